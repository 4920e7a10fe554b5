model Q { question: str }
model A { answer: float "The answer" }
lm fast = "local/smollm2-135m"
lm big = "openai/gpt-4.1-mini"

program solve "Solves" {
    input q: Q
    draft = generate A from q using fast
    final = generate A from q + draft using big instructions "Check the draft, then answer."
    output final
}

data d = gsm8k()

train solve on d {
    reward exact_match(out_mask: ["answer"])
    optimizer random_few_shot(nb_min_examples: 1, nb_max_examples: 4)
    epochs 3
    batch_size 8
    runs 2
    seed 7
    validation_split 0.25
    concurrency 2
    checkpoint best reward min
}
