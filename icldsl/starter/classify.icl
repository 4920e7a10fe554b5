// A starter: customer messages sorted into the team that handles them.
//
// Fit it, then run the artifact it writes (see README.md):
//     icldsl fit classify.icl
//     icldsl run classify.artifact.json --input '{"text": "My parcel never arrived"}'
//
// Training gives every message the 4 training messages most like it, with their teams,
// as examples (retrieved by BM25, no extra download). To use another model, change the
// `lm` line, for example to an Ollama server: lm small = "ollama/llama3.2" { temperature: 0.0 }

model Message {
    text: str "A message a customer wrote"
}

model Team {
    team: enum("billing", "shipping", "account", "technical") "The team that handles the message"
}

lm small = "local/smollm2-135m" { temperature: 0.0, max_tokens: 16 }

program classify "Send a customer's message to the team that handles it" {
    input  message: Message
    team   = decide Team from message
        instructions "Pick the team that handles the customer's message."
    output team
}

data messages = jsonl("messages.jsonl", split: 0.75)

train classify on messages {
    reward           exact_match()
    optimizer        nearest_few_shot(k: 4)
    // 30 of the 75 training messages validate: an optimizer switches only on 30 rows or more
    validation_split 0.4
}
