model Q { question: str }
model Draft { answer: float "A first answer" }
model Final { answer: float  thinking: str }
lm solver = "local/smollm2-135m"
program p {
    input q: Q
    draft = generate Draft from q
    check = generate Draft from draft + draft
    both = chain_of_thought Final from q + draft
    output both, draft
}
