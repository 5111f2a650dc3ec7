"""Who says it (factcheck/attribution.py): speakers read off attribution cues, source types."""

from __future__ import annotations

import pytest

from factcheck import attribution


@pytest.mark.parametrize(
    ("sentence", "who"),
    [
        (
            "Seeking to underline the dangers, United States officials said four missiles crashed.",
            "United States officials",
        ),
        ("Union leader Maria Okafor said the port had refused to discuss a pay rise.", "Maria Okafor"),
        ("According to the Saltmere Port Authority, the strike ended.", "the Saltmere Port Authority"),
        (
            "As Radio Free Europe/Radio Liberty noted, the boasts were removed.",
            "Radio Free Europe/Radio Liberty",
        ),
        ("The port authority has denied that it refused talks.", "The port authority"),
        ("Russia’s defence ministry denied the claim made by the US.", "Russia’s defence ministry"),
        (
            "On Wednesday, Russian Defense Minister Sergey Shoigu told President Putin that all hit.",
            "Russian Defense Minister Sergey Shoigu",
        ),
        ("Police said five people were hurt.", "Police"),
        ("He said the port had refused.", None),  # a pronoun names no one
        ("“It is over,” she said.", None),
        ("Stocks rose on Monday.", None),
    ],
)
def test_speaker(sentence: str, who: str | None) -> None:
    assert attribution.speaker(sentence) == who


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (None, "unattributed"),
        ("", "unattributed"),
        ("Reuters", "media"),
        ("BBC News", "media"),
        ("the Hurriyet newspaper", "media"),
        ("Syrian state television", "media"),
        ("The Merrow Courier", "media"),
        ("A Courier reporter", "media"),
        ("Ministry of Defence", "government"),
        ("US officials", "government"),
        ("police", "government"),
        ("Defense Secretary Ash Carter", "government"),
        ("a report by the IMF", "document"),
        ("The study", "document"),
        ("Carrow University", "organization"),
        ("Economists at Carrow University", "organization"),
        ("the dockers' union", "organization"),
        ("Maria Okafor", "person"),
    ],
)
def test_source_type(name: str | None, kind: str) -> None:
    assert attribution.source_type(name) == kind


def test_source_type_uses_the_guess_only_when_the_name_says_nothing() -> None:
    assert attribution.source_type("Maria Okafor", "organization") == "organization"
    assert attribution.source_type("Maria Okafor", "unattributed") == "person"
    assert attribution.source_type("Reuters", "person") == "media"  # the keyword wins over the guess
    assert attribution.source_type(None, "person") == "unattributed"


def test_an_authority_is_not_a_person() -> None:
    assert attribution.source_type("the Saltmere Port Authority") != "person"


@pytest.mark.parametrize(
    ("name", "sentence", "previous", "grounded"),
    [
        ("US officials", "United States officials said four missiles crashed.", "", True),
        ("Maria Okafor", "Union leader Maria Okafor said the port had refused.", "", True),
        ("Okafor", "Union leader Maria Okafor said the port had refused.", "", True),
        ("Maria Okafor", "She said the port had refused.", "Union leader Maria Okafor spoke first.", True),
        ("John Kerry", "He said the talks would go on.", "Secretary of State John Kerry arrived.", True),
        # The previous sentence counts only when this one says "he/she said".
        ("Maria Okafor", "The port had refused talks.", "Union leader Maria Okafor spoke first.", False),
        ("Vladimir Putin", "The port authority denied it.", "", False),  # invented by the model
        (None, "Anything at all.", "", True),
    ],
)
def test_grounded_source(name: str | None, sentence: str, previous: str, grounded: bool) -> None:
    assert attribution.grounded_source(name, sentence, previous) is grounded



@pytest.mark.parametrize(
    "name, sentence, kind",
    [
        ("Ana Ruiz", "Finance Minister Ana Ruiz said the deficit would shrink.", "government"),
        ("Ana Ruiz", "The council's finance director, Ana Ruiz, told councillors the gap was real.", "government"),
        ("Ana Ruiz", "Ana Ruiz, a spokeswoman for the port authority, said talks would resume.", "government"),
        ("Ana Ruiz", "Union leader Ana Ruiz said members would strike.", "organization"),
        ("Ana Ruiz", "Ana Ruiz, a retired teacher from Lyon, said she was afraid.", "person"),
        ("Ana Ruiz", "Ana Ruiz said the council had lied to residents.", "person"),  # "council" is not her role
    ],
)
def test_source_type_reads_the_role_the_sentence_gives(name: str, sentence: str, kind: str) -> None:
    assert attribution.source_type(name, None, sentence) == kind


@pytest.mark.parametrize(
    ("sentence", "who"),
    [
        ("Its finance spokesman, Callum Reyes, said the shortfall was smaller.", "Callum Reyes"),
        ("Dr. Ana Ruiz, a virologist not involved in the trial, said the result might be real.", "Dr. Ana Ruiz"),
        ("Friends of Kilnworth Library, a volunteer group, said it was wrong.", "Friends of Kilnworth Library"),
        ("A senior officer, who asked not to be named, told reporters a list existed.", "A senior officer"),
        ("“It is a proud day,” said Chief Executive Ana Ruiz, the founder's heir.", "Chief Executive Ana Ruiz"),
        ("“This will be hard,” said the company's managing director, Neil Farrant.", "Neil Farrant"),
        ("“It is over,” said Monday's statement from the club.", None),
    ],
)
def test_speaker_set_off_by_commas_or_after_the_cue(sentence: str, who: str | None) -> None:
    assert attribution.speaker(sentence) == who


def test_a_pronoun_cue_takes_the_speaker_named_just_before() -> None:
    previous = "Union leader Maria Okafor said the port had refused talks."
    assert attribution.speaker_in_context("She added that members would strike again.", previous) == "Maria Okafor"
    assert attribution.speaker_in_context("The port reopened.", previous) is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("The US", "government"),
        ("Turkey and allies", "government"),
        ("Russia's", "government"),
        ("the United Kingdom", "government"),
        ("Jordan Peterson", "person"),  # a country's name followed by a surname is a person
    ],
)
def test_a_country_speaks_through_its_government(name: str, kind: str) -> None:
    assert attribution.source_type(name) == kind
