model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m" { temperature: "hot", max_tokens: 1.5 }
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k(train_limit: "ten")
train p on d {
    reward exact_match(in_mask: "answer")
    optimizer random_few_shot(nb_max_examples: true)
    epochs 1.5
}
