from study.eval.mentions import asserted_categories, parse_mentions, sentences, tokenize


def test_tokenize_splits_punctuation_and_lowercases():
    assert tokenize("No, there is a Cup.") == ["no", ",", "there", "is", "a", "cup", "."]
    assert sentences("a cup . a dog ? tail") == [["a", "cup", "."], ["a", "dog", "?"], ["tail"]]


def test_negated_existence_is_not_an_assertion(spec):
    assert asserted_categories("no , there is no cup .", spec) == []
    (m,) = parse_mentions("no , there is no cup .", spec)
    assert (m.category, m.word, m.sentence, m.negated) == ("cup", "cup", 0, True)
    assert asserted_categories("yes , there is a cup .", spec) == ["cup"]
    assert asserted_categories("there are no cups .", spec) == []
    assert asserted_categories("there are no small red cups .", spec) == []
    assert asserted_categories("there is not a mug .", spec) == []


def test_answer_particle_and_relation_negation_keep_objects_asserted(spec):
    assert asserted_categories("no , the cup is not left of the dog .", spec) == ["cup", "dog"]
    assert asserted_categories("the cup is not above the dog .", spec) == ["cup", "dog"]


def test_negation_does_not_cross_sentences_or_object_words(spec):
    assert asserted_categories("there is no . cup", spec) == ["cup"]
    assert asserted_categories("there is no cup dog .", spec) == ["dog"]


def test_synonyms_plurals_and_repeats_map_to_categories(spec):
    text = "there is a mug . there are two puppies . the cup is above the dish ."
    assert asserted_categories(text, spec) == ["cup", "dog", "cup", "plate"]
    assert [m.sentence for m in parse_mentions(text, spec)] == [0, 1, 2, 2]
    assert asserted_categories("this is a kitchen scene .", spec) == []
    assert parse_mentions("", spec) == []
