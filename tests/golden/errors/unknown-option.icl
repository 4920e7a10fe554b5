model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m" { temprature: 0.0, base_url: "http://x" }
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k(train_limt: 10, 5)
train p on d {
    reward exact_match(in_mask: ["answer"], mask: ["answer"])
    optimizer random_few_shot(nb_max: 3)
}
