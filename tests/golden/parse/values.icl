// LM options, env(), lists, positional and keyword arguments, trailing commas.
lm remote = "openai/gpt-4.1-mini" {
    base_url: env("OPENAI_BASE_URL")
    api_key: env("OPENAI_API_KEY"),
    temperature: 0.7, max_tokens: 1e3,
    seed: -4,
}
lm bare = "local/smollm2-135m"

data mine = jsonl("data/train.jsonl", test: "data/test.jsonl", split: 0.75, seed: 3,)
data mapped = jsonl("tickets.jsonl", map: { question: "text", answer: "label", }, seed: 1)
