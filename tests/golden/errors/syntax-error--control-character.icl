model Q { question: str "The	question" }
