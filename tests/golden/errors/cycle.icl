model Q { question: str }
model A { answer: float }
model B { note: str }
lm solver = "local/smollm2-135m"
program p {
    input q: Q
    a = generate A from q + b
    b = generate B from a
    output a
}
