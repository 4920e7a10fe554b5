model Q { question: str  hint: Hnit }
model Hint { text: str }
model A { answer: flaot }
lm solver = "local/smollm2-135m"
program p {
    input q: Q
    a = generate Answer from q
    b = generate A from c
    c = generate A from qq using solvr
    output b
}
data d = gsm8k()
train p on dd { reward exact_match() optimizer random_few_shot() }
