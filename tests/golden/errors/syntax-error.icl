model MathQuestion {
    question: str "The question"

program p {
