// Training settings: embeddings, chained optimizers, early stopping, a budget.
model Q { question: str "A question" }
model A { answer: float "The number" }
lm solver = "local/smollm2-135m"
embedding minilm = "local/all-minilm-l6-v2"
embedding remote = "openai/text-embedding-3-small" { base_url: "http://127.0.0.1:8000/v1", api_key: env("KEY") }
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k(train_limit: 10)
train p on d {
    reward          exact_match(in_mask: ["answer"])
    optimizer       random_few_shot(nb_max_examples: 2)
    optimizer       random_few_shot(nb_min_examples: 1)
    epochs          3
    early_stopping  patience 2
    budget          { calls: 500, tokens: 100000 }
    checkpoint      best val_accuracy max
}
