// GSM8K with chain of thought: the step fills a `thinking` field before the answer.

model MathQuestion {
    question: str "The math word problem"
}

model NumericalAnswer {
    answer: float "The numerical answer"
}

lm solver = "local/smollm2-135m" { temperature: 0.0, max_tokens: 200 }

program gsm8k_cot "GSM8K, thinking first" {
    input  q: MathQuestion
    answer = chain_of_thought NumericalAnswer from q
        instructions "Solve the math word problem. Reason briefly, then give the final number."
    output answer
}

data gsm8k = gsm8k(train_limit: 30, test_limit: 30)

train gsm8k_cot on gsm8k {
    reward     exact_match(in_mask: ["answer"])
    optimizer  random_few_shot(nb_max_examples: 3)
    epochs     2
    batch_size 16
}
