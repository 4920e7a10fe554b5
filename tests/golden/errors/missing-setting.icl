model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k()
train p on d {
    epochs 2
}
