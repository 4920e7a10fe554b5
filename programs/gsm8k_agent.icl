// GSM8K with a calculator: the agent calls the tool in a loop, then answers.

model MathQuestion {
    question: str "The math word problem"
}

model NumericalAnswer {
    answer: float "The numerical answer"
}

lm solver = "local/smollm2-135m" { temperature: 0.0, max_tokens: 200 }

// A Python callable: any importable "module:function"; modules beside this file work too.
tool calculator = python("icldsl.tools:calculator")

program gsm8k_agent "GSM8K with a calculator" {
    input  q: MathQuestion
    answer = agent NumericalAnswer from q tools [calculator] max_steps 4
        instructions "Work out the arithmetic with the calculator, then give the final number."
    output answer
}

data gsm8k = gsm8k(train_limit: 20, test_limit: 20)

train gsm8k_agent on gsm8k {
    reward     exact_match(in_mask: ["answer"])
    optimizer  random_few_shot(nb_max_examples: 2)
    epochs     1
    batch_size 10
}
