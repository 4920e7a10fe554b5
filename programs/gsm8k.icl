// The GSM8K baseline from the Synalinks tutorial, as one file.
// Run it: icldsl fit programs/gsm8k.icl   (the bundled local model; no API key)

model MathQuestion {
    question: str "The math word problem"
}

model NumericalAnswerWithThinking {
    thinking: str   "Your step by step thinking"
    answer:   float "The numerical answer"
}

// Provider-prefixed LM names. The bundled SmolLM2-135M runs in process on the CPU.
lm solver = "local/smollm2-135m" { temperature: 0.0, max_tokens: 200 }
// lm solver = "openai/gpt-4.1-mini" { base_url: env("OPENAI_BASE_URL"), api_key: env("OPENAI_API_KEY") }

program gsm8k_baseline "The GSM8K baseline" {
    input  q: MathQuestion
    answer = generate NumericalAnswerWithThinking from q
        instructions "Solve the math word problem. Think step by step, then give the final number."
    output answer
}

// Limits keep a fit on 2 CPU cores well under 15 minutes; raise them on a bigger machine.
data gsm8k = gsm8k(train_limit: 30, test_limit: 30)

train gsm8k_baseline on gsm8k {
    reward     exact_match(in_mask: ["answer"])
    optimizer  random_few_shot(nb_max_examples: 3)
    epochs     2
    batch_size 16
    checkpoint best val_reward max  // keep the best epoch (or the untrained program)
}
