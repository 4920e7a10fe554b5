model Q { question: str }
model Q { text: str }
model A { answer: float answer: int }
lm solver = "local/smollm2-135m"
program p {
    input q: Q
    a = generate A from q
    a = generate A from q
    output a
}
