model Q { question: str  kind: enum("a", "b", "a") }
model Loop { next: Loop2 }
model Loop2 { back: list[Loop] }
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
