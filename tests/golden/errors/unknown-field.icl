model MathQuestion { question: str "The math word problem" }
model NumericalAnswerWithThinking {
    thinking: str   "Your step by step thinking"
    answer:   float "The numerical answer"
}
lm solver = "local/smollm2-135m" { temperature: 0.0 }
program gsm8k_baseline {
    input  q: MathQuestion
    answer = generate NumericalAnswerWithThinking from q
    output answer
}
data gsm8k = gsm8k(train_limit: 200, test_limit: 100)
train gsm8k_baseline on gsm8k {
    reward     exact_match(in_mask: ["anwser"])
    optimizer  random_few_shot(nb_max_examples: 3)
}
