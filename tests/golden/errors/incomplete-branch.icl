model Ticket { text: str }
model Route { label: enum("billing", "technical", "other") }
model Answer { reply: str }
lm solver = "local/smollm2-135m"
program support {
    input t: Ticket
    route = decide Route from t
    answer = branch route.label {
        "billing"   => generate Answer from t instructions "Answer as the billing team."
        "technical" => chain_of_thought Answer from t
    }
    output answer
}
