model Q { question: str(min_length: 5, max_length: 2)  kind: enum("a", "b", "a")  code: str(pattern: "[a-") }
model Loop { next: Loop2 }
model Loop2 { back: Loop? }
model Tree { kids: list[Tree] "a tree: fine" }
model A { answer: float }
lm solver = "local/smollm2-135m" { temperature: 3.0, max_tokens: 0 }
program p { input q: Q  a = generate A from q.question  output a }
data d = gsm8k()
train p on d {
    reward exact_match()
    optimizer random_few_shot()
    epochs 0
    validation_split 1.5
    checkpoint best val_loss maximum
}
