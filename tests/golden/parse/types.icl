// Every type form, nested models and field descriptions.
model Address {
    city: str "City name"
    zip:  str?
}

model Person {
    name:     str       "Full name"
    age:      int       "Age in years"
    height:   float
    active:   bool      "Whether the account is active"
    tags:     list[str] "Free-form tags"
    scores:   list[list[float]]
    nickname: str?
    role:     enum("admin", "user", "guest",) "Access level"
    address:  Address   "Where they live"
    previous: list[Address]?
}
