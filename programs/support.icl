// A routed support desk: decide which team a ticket goes to, then let only that
// team's step answer. Shows branch, chain_of_thought, merged inputs, a frozen
// step and several outputs.

model Ticket {
    text:     str  "The customer's message"
    customer: str? "The customer's name, when known"
}

model Route {
    team:   enum("billing", "technical", "other") "Which team handles the ticket"
    urgent: bool "Whether the customer cannot work until it is solved"
}

model Reply {
    reply:      str(max_length: 400)  "The answer to send to the customer"
    confidence: float(min: 0, max: 1) "How sure the answer is, from 0 to 1"
}

lm desk = "local/smollm2-135m" { temperature: 0.0, max_tokens: 160 }

program support "Route a ticket, then answer it" {
    input  ticket: Ticket
    route  = frozen decide Route from ticket
        instructions "Pick the team: billing for payments and invoices, technical for errors and outages."
    answer = branch route.team {
        "billing"   => generate Reply from ticket + route instructions "Answer as the billing team."
        "technical" => chain_of_thought Reply from ticket + route
        _           => generate Reply from ticket
    }
    output answer, route
}

data tickets = jsonl("data/tickets.jsonl", split: 0.5)

train support on tickets {
    reward     exact_match(in_mask: ["team"])
    optimizer  random_few_shot(nb_max_examples: 2)
    epochs     1
    batch_size 4
}
