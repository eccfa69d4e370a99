"""Small real-language pages for the clean tests (original text, written for these tests)."""

from __future__ import annotations

PARAGRAPHS = {
    "en": [
        "The city library reopens on Monday. After a renovation that took more than a year, the "
        "reading rooms are brighter, the area for children and teenagers is larger, and there are "
        "more desks with power outlets.",
        "The head of the library said that visitors will also be able to borrow books on Saturday "
        "afternoons. In addition, the collection of digital magazines, which can be read at home "
        "with a library card, will grow.",
        "Guided tours of the building are planned for the first week. During the tours the "
        "architects will explain how the old building was joined to the new extension.",
    ],
    "de": [
        "Die Stadtbibliothek öffnet am Montag wieder ihre Türen. Nach einer Renovierung von mehr "
        "als einem Jahr gibt es nun hellere Lesesäle, einen größeren Bereich für Kinder und "
        "Jugendliche sowie mehr Arbeitsplätze mit Steckdosen.",
        "Die Leiterin der Bibliothek erklärte, dass die Besucherinnen und Besucher künftig auch am "
        "Samstagnachmittag Bücher ausleihen können. Außerdem wird die Sammlung digitaler "
        "Zeitschriften erweitert, die man mit dem Bibliotheksausweis von zu Hause aus lesen kann.",
        "Für die erste Woche sind Führungen durch das Gebäude geplant, bei denen die Architekten "
        "erklären, wie der alte Bau mit dem neuen Anbau verbunden wurde.",
    ],
    "ja": [
        "市立図書館は月曜日から再び開館します。一年以上にわたる改修工事の結果、閲覧室は明るくなり、"
        "子どもや若者のためのスペースも広くなりました。",
        "館長によると、今後は土曜日の午後にも本を借りることができるようになります。また、"
        "図書館カードを使って自宅から読める電子雑誌の種類も増える予定です。",
        "最初の一週間は建物の見学会が開かれ、設計者が古い建物と新しい建物をどのようにつないだのかを"
        "説明します。",
    ],
    "ru": [
        "Городская библиотека снова откроется в понедельник. После ремонта, который длился больше "
        "года, читальные залы стали светлее, появилось больше места для детей и подростков, а "
        "также новые рабочие места с розетками.",
        "Директор библиотеки рассказала, что теперь книги можно будет брать и в субботу после "
        "обеда. Кроме того, расширится коллекция электронных журналов, которые можно читать дома "
        "с читательским билетом.",
        "В первую неделю пройдут экскурсии по зданию, во время которых архитекторы объяснят, как "
        "старое здание соединили с новой пристройкой.",
    ],
    "mojibake": [
        "Last summer we visited the café on the corner of Rue de la Paix. The owner, José Müller, "
        "served crème brûlée and a naïve little cake he called “the façade special”.",
        "His daughter Zoë had just come back from São Paulo and Zürich — she told us about the "
        "trains there. We paid 12 € each and left a generous tip for the waiter.",
        "It was the best dessert we had on the whole trip, and we still talk about it at home.",
    ],
}
TITLES = {"en": "City library reopens", "de": "Bibliothek", "ja": "図書館", "ru": "Библиотека",
          "mojibake": "A café in Paris"}  # fmt: skip
BOILERPLATE = ("Home", "Subscribe to our newsletter", "Privacy settings")


def page(name: str) -> str:
    """An HTML page: navigation and footer boilerplate around an article of real paragraphs.

    `mojibake` is UTF-8 text that was decoded as Latin-1 once (the page stores the broken text).
    """
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS[name])
    html = (
        f"<!DOCTYPE html><html><head><title>{TITLES[name]}</title>"
        "<script>var tracking = {id: 42};</script><style>p {margin: 0}</style></head><body>"
        f"<nav><a href='/'>{BOILERPLATE[0]}</a> <a href='/news'>News</a> <a href='/x'>Sports</a>"
        f"</nav><main><article><h1>{TITLES[name]}</h1>{body}</article></main>"
        f"<footer><p>{BOILERPLATE[1]}</p><p>{BOILERPLATE[2]}</p></footer></body></html>"
    )
    if name == "mojibake":
        html = html.encode("utf-8").decode("latin-1")
    return html
