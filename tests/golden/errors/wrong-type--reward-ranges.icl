model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k()
train p on d {
    reward exact_match(tolerance: -0.5)
    optimizer random_few_shot()
}
train p on d {
    reward lm_judge(lm: solver, scale: 1)
    optimizer random_few_shot()
}
