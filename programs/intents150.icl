// A many-label task: CLINC150's 150 intents in 10 domains (banking, travel, small talk, ...),
// 10 training and 2 test queries per intent, on the bundled 135M model. With 150 labels the
// answer's enum is most of an untrained prompt; `nearest_few_shot` shows each query the 8
// training queries most like it, and with `labels: "retrieved"` the enum offers only their
// labels. The model does not write the answer: it scores each label its 8 examples carry, and
// the label with the highest log-probability plus the log of its share of the 8 votes answers
// (`vote_weight: 1`); validation chooses between that and the vote alone. The fit prints what the
// retriever alone scores (a vote of the 8 labels, and the nearest one's), beside the trained program.
//
// Data: CLINC150 (Larson et al., "An Evaluation Dataset for Intent Classification and
// Out-of-Scope Prediction", EMNLP-IJCNLP 2019; CC BY 3.0).

model Query {
    query: str "A user's request to a virtual assistant"
}

model Intent {
    intent: enum("freeze_account", "routing", "pin_change", "bill_due", "pay_bill", "account_blocked", "interest_rate", "min_payment", "bill_balance", "transfer", "order_checks", "balance", "spending_history", "transactions", "report_fraud", "replacement_card_duration", "expiration_date", "damaged_card", "improve_credit_score", "report_lost_card", "card_declined", "credit_limit_change", "apr", "redeem_rewards", "credit_limit", "rewards_balance", "application_status", "credit_score", "new_card", "international_fees", "food_last", "confirm_reservation", "how_busy", "ingredients_list", "calories", "nutrition_info", "recipe", "restaurant_reviews", "restaurant_reservation", "meal_suggestion", "restaurant_suggestion", "cancel_reservation", "ingredient_substitution", "cook_time", "accept_reservations", "what_song", "play_music", "todo_list_update", "reminder", "reminder_update", "calendar_update", "order_status", "update_playlist", "shopping_list", "calendar", "next_song", "order", "todo_list", "shopping_list_update", "smart_home", "current_location", "oil_change_when", "oil_change_how", "uber", "traffic", "tire_pressure", "schedule_maintenance", "gas", "mpg", "distance", "directions", "last_maintenance", "gas_type", "tire_change", "jump_start", "plug_type", "travel_notification", "translate", "flight_status", "international_visa", "timezone", "exchange_rate", "travel_suggestion", "travel_alert", "vaccines", "lost_luggage", "book_flight", "book_hotel", "carry_on", "car_rental", "weather", "alarm", "date", "find_phone", "share_location", "timer", "make_call", "calculator", "definition", "measurement_conversion", "flip_coin", "spelling", "time", "roll_dice", "text", "pto_request_status", "next_holiday", "insurance_change", "insurance", "meeting_schedule", "payday", "taxes", "income", "rollover_401k", "pto_balance", "pto_request", "w2", "schedule_meeting", "direct_deposit", "pto_used", "who_made_you", "meaning_of_life", "who_do_you_work_for", "do_you_have_pets", "what_are_your_hobbies", "fun_fact", "what_is_your_name", "where_are_you_from", "goodbye", "thank_you", "greeting", "tell_joke", "are_you_a_bot", "how_old_are_you", "what_can_i_ask_you", "change_speed", "user_name", "whisper_mode", "yes", "change_volume", "no", "change_language", "repeat", "change_accent", "cancel", "sync_device", "change_user_name", "change_ai_name", "reset_settings", "maybe") "What the user asks for"
}

lm small = "local/smollm2-135m" { temperature: 0.0, max_tokens: 24 }

embedding minilm = "local/all-minilm-l6-v2"

program assistant "Route a user's request to the intent it asks for" {
    input  query: Query
    intent = decide Intent from query
        instructions "Classify the user's request into the intent it asks for."
    output intent
}

data clinc = clinc150(train_per_intent: 10, test_per_intent: 2)

train assistant on clinc {
    reward           exact_match()
    // compare_on: every validation row (150); `cascade: [0, false]` offers the vote itself (0) beside
    // the LM scoring the retrieved labels (vote_weight 1), so validation chooses between them
    optimizer        nearest_few_shot(k: 8, retriever: minilm, labels: "retrieved", cascade: [0, false], vote_weight: 1, compare_on: 150)
    validation_split 0.1
    concurrency      8
}
