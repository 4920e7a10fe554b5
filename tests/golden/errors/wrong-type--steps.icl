model Q { question: str }
model A { answer: float(min: "zero") }
lm solver = "local/smollm2-135m"
tool calc = python("icldsl.tools:calculator")
program p {
    input q: Q
    a = decide A from q
    b = branch q.question { "x" => generate A from q }
    c = branch a.answer { "1" => generate A from q _ => generate A from q }
    d = agent A from q tools [calc, clock] max_steps 0
    e = generate A from q tools [calc]
    output d
}
