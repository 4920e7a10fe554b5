// Classification with `decide` on real, human-labelled data: the sentiment of a tweet,
// one of three labels. data/tweets.SOURCE.md says where the 600 tweets come from.

model Tweet {
    text: str(min_length: 1) "A short social media post (tweet)"
}

model TweetSentiment {
    label: enum("positive", "negative", "neutral") "How the tweet feels overall"
}

lm classifier = "local/smollm2-135m" { temperature: 0.0, max_tokens: 16 }

program tweets "Tweet sentiment" {
    input  tweet: Tweet
    label  = decide TweetSentiment from tweet
    output label
}

data tweets = jsonl("data/tweets.jsonl", split: 0.8, train_limit: 200, seed: 1)

train tweets on tweets {
    reward     exact_match()
    optimizer  random_few_shot(nb_min_examples: 2, nb_max_examples: 4)
    epochs     2
    batch_size 16
}
