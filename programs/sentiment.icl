// Classification with `decide`: a review's sentiment, one of three labels.

model Review {
    text: str(min_length: 1) "A customer review of a product"
}

model Sentiment {
    label: enum("positive", "negative", "neutral") "How the review feels overall"
}

// Sampled, so that `runs 3` below measures something: each test run sends its own seed.
lm classifier = "local/smollm2-135m" { temperature: 0.7, max_tokens: 16 }

program sentiment "Review sentiment" {
    input  review: Review
    label  = decide Sentiment from review
    output label
}

data reviews = jsonl("data/reviews.jsonl", split: 0.6, seed: 1)

train sentiment on reviews {
    reward     exact_match()
    optimizer  random_few_shot(nb_min_examples: 2, nb_max_examples: 4)
    epochs     2
    batch_size 8
    runs       3
}
