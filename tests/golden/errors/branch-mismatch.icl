model Ticket { text: str }
model Route { label: enum("billing", "technical", "other") }
model Answer { reply: str }
model Escalation { team: str }
lm solver = "local/smollm2-135m"
program support {
    input t: Ticket
    route = decide Route from t
    answer = branch route.label {
        "billing"   => generate Answer from t
        "technical" => generate Escalation from t
        "shipping"  => generate Answer from t
        _           => generate Answer from t
    }
    output answer
}
