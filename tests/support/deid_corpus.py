"""Corpus for the de-identification gate (newsletter.deid), used by tests/test_deid.py and
bench/deid_recall.py.

Every client, relative, employer, number and address here is invented. TUNING and TUNING_CLEAN are
the sentences the rules were tuned on. HELDOUT and HELDOUT_CLEAN were written after the rules were
frozen and were not tuned on: their figures are the honest ones.

Each identifying vignette lists the identifiers it contains as (kind, exact text); the text must occur
in the vignette (the first occurrence is the one meant).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vignette:
    text: str
    identifiers: tuple[tuple[str, str], ...]

    def spans(self) -> list[tuple[str, int, int]]:
        out = []
        for kind, ident in self.identifiers:
            start = self.text.find(ident)
            if start < 0:
                raise ValueError(f"{ident!r} not in {self.text!r}")
            out.append((kind, start, start + len(ident)))
        return out


def V(text: str, *identifiers: tuple[str, str]) -> Vignette:
    return Vignette(text, identifiers)


# The three vignettes on Harvest's own page ("What kind of results do people experience?"), verbatim.
CLINIC_VIGNETTES: tuple[str, ...] = (
    "A client wanted to decrease drinking so that he was able to go to bars socially with his buddies, "
    "but gain more self-control over the amount he drank. After three ketamine sessions, he found he "
    "was able to go out to the bar and when he looked at the menu, he was able to really ask himself "
    "what he wanted and realized that he preferred a non-alcoholic drink. ",
    "A client who wanted to change her pattern of zoning out on her phone at the end of a day described "
    "after ketamine treatment the experience of being aware of her phone, realizing that nothing on the "
    "phone was all that interesting, and instead decided to go for a run. ",
    "A client was beginning to go down a familiar road of marital conflict with her husband, but after "
    "he got the first few sentences out, rather than fight, she paused and said “I don’t like it when "
    "you talk to me like that.” Rather than fight as they usually would have, they had an intense "
    "conversation about how her husband speaks to her and how she wants him to speak with more respect "
    "towards her, even if they disagree. ",
)


TUNING: tuple[Vignette, ...] = (
    V(
        "A client named Maria Delgado came to us after her divorce. After three ketamine sessions, she "
        "was able to talk with her sister again.",
        ("name", "Maria Delgado"),
    ),
    V(
        "Tom, a 93-year-old veteran from Millinocket, wanted to stop drinking before his granddaughter's wedding.",
        ("name", "Tom"),
        ("age", "93-year-old"),
        ("place", "Millinocket"),
    ),
    V(
        "A client who works at Bath Iron Works described the noise of the shipyard as the trigger for her panic.",
        ("name", "Bath Iron Works"),
    ),
    V(
        "After moving to Bar Harbor in March 2021, a client started to notice how often he reached for a drink.",
        ("place", "Bar Harbor"),
        ("date", "March 2021"),
    ),
    V(
        "A client who lives at 14 Birch Lane, Apt 3B, Orono, ME 04473 said the walk to the bus stop "
        "became her daily meditation.",
        ("address", "14 Birch Lane, Apt 3B"),
        ("place", "Orono"),
        ("zip", "04473"),
    ),
    V(
        "Her husband Kevin called the front desk at (207) 555-0143 to ask whether he could join the "
        "integration session.",
        ("name", "Kevin"),
        ("phone", "(207) 555-0143"),
    ),
    V(
        "A client asked us to send her notes to jdoe1987@gmail.com rather than to her work address.",
        ("email", "jdoe1987@gmail.com"),
    ),
    V(
        "During intake on 04/12/2022, a client shared that his father had died on Christmas Eve.",
        ("date", "04/12/2022"),
        ("date", "Christmas Eve"),
    ),
    V(
        "A client's SSN, 123-45-6789, was pasted into the story by mistake, along with her MRN 00471829.",
        ("ssn", "123-45-6789"),
        ("record", "00471829"),
    ),
    V(
        "The client's health plan member ID XKH442918 was on the superbill, so it was removed before "
        "the story went out.",
        ("record", "XKH442918"),
    ),
    V(
        "He drove to his sessions in a blue pickup with Maine plate 4471 KB, which staff soon recognised in the lot.",
        ("vehicle", "4471 KB"),
    ),
    V("Her car, VIN 1HGCM82633A004352, was towed from our lot during a session.", ("vehicle", "1HGCM82633A004352")),
    V(
        "A client with an insulin pump (serial number PX-22817-B) worried the ketamine might interfere with it.",
        ("device", "PX-22817-B"),
    ),
    V(
        "His CPAP machine, serial SN4471290, kept alarming during the home session, and he laughed "
        "about it afterwards.",
        ("device", "SN4471290"),
    ),
    V(
        "She found our clinic through her blog at www.maryswalk.net, where she writes about recovery.",
        ("url", "www.maryswalk.net"),
    ),
    V(
        "A client shared her story at [her blog](https://medium.com/@kjones/finding-my-way) so friends could read it.",
        ("url", "https://medium.com/@kjones/finding-my-way"),
    ),
    V("The telehealth log showed the client connecting from 192.168.14.22 every evening.", ("ip", "192.168.14.22")),
    V(
        "A client's laptop, MAC address 00:1A:2B:3C:4D:5E, was left in the waiting room after her session.",
        ("device", "00:1A:2B:3C:4D:5E"),
    ),
    V(
        "The error report the client forwarded listed the address 2001:db8:85a3::8a2e:370:7334.",
        ("ip", "2001:db8:85a3::8a2e:370:7334"),
    ),
    V(
        "A client at Dr. Patel's practice in Ellsworth started ketamine after years of treatment-resistant depression.",
        ("name", "Patel"),
        ("place", "Ellsworth"),
    ),
    V("A client born on July 4, 1961 said fireworks still make her jump.", ("date", "July 4, 1961")),
    V("Aged 96, a client told us she had never spoken about the war until her third session.", ("age", "Aged 96")),
    V(
        "A ninety-one-year-old client, a retired teacher, said the sessions gave her back her curiosity.",
        ("age", "ninety-one-year-old"),
    ),
    V(
        "A client who drives for Lyft in Portland, Oregon, uses his sessions to unwind.",
        ("name", "Lyft"),
        ("place", "Portland"),
    ),
    V("Her driver's license number D1234567 was visible on the scanned consent form.", ("record", "D1234567")),
    V(
        "A client who works as a nurse, license RN-204417, asked that her profession stay vague.",
        ("record", "RN-204417"),
    ),
    V(
        "The client's account number 4471-2290-0017 at the billing office was quoted in her email to us.",
        ("record", "4471-2290-0017"),
    ),
    V("Ms. Okafor first came to Harvest in the spring and has since returned to running.", ("name", "Okafor")),
    V(
        "A client from Aroostook County said the long winters made his depression worse every year.",
        ("place", "Aroostook County"),
    ),
    V(
        "On Thanksgiving, a client sat at the table with her brother Jamal for the first time in ten years.",
        ("date", "Thanksgiving"),
        ("name", "Jamal"),
    ),
    V(
        "A client who was 94 years old when she started said the sessions helped her grieve her late husband, Harold.",
        ("age", "94 years old"),
        ("name", "Harold"),
    ),
    V(
        "She asked us to text her at 207-942-7731 or fax the forms to 207-942-7700.",
        ("phone", "207-942-7731"),
        ("phone", "207-942-7700"),
    ),
    V("A client whose employee badge number is 88213 works the night shift at a hospital.", ("code", "88213")),
    V(
        "A client gave her Instagram handle @maya.heals.207 so others in the group could reach her.",
        ("code", "@maya.heals.207"),
    ),
    V(
        "The client's Medicaid number is 7781-440-21, and she asked for help with the paperwork.",
        ("record", "7781-440-21"),
    ),
    V(
        "A client's daughter, *Sophie*, drove him to every session from **Skowhegan**.",
        ("name", "Sophie"),
        ("place", "Skowhegan"),
    ),
    V(
        "His full number, 042 55 1234, ended up in the intake notes, along with the last four digits "
        "6789 of his wife's.",
        ("ssn", "042 55 1234"),
        ("code", "6789"),
    ),
    V(
        "She lived in the same house on Water Street until her divorce in the fall of 2019.",
        ("address", "Water Street"),
    ),
    V("Her prescription confirmation code was 8XK2-P9QL, which she read aloud in group.", ("code", "8XK2-P9QL")),
    V("A client was admitted the 14th of February and discharged three days later.", ("date", "14th of February")),
    V(
        "Mail for the client should go to PO Box 118, Hampden, ME 04444, not to her home.",
        ("address", "PO Box 118"),
        ("place", "Hampden"),
        ("zip", "04444"),
    ),
    V(
        "A client's wife wrote to us from pat.obrien@outlook.com to thank the team, and signed it Pat O'Brien.",
        ("email", "pat.obrien@outlook.com"),
        ("name", "Pat O'Brien"),
    ),
    V(
        "Jennifer, a teacher at Bangor High School, began sessions in the summer.",
        ("name", "Jennifer"),
        ("name", "Bangor High School"),
    ),
    V(
        "A client whose son was killed on Route 1 in Wiscasset still drives past the spot every week.",
        ("place", "Wiscasset"),
    ),
    V(
        "A client told us her MAC address was 3C-22-FB-90-1A-7E when the clinic Wi-Fi blocked her laptop.",
        ("device", "3C-22-FB-90-1A-7E"),
    ),
    V("Sarah's mom drove her up from Lewiston every other Friday.", ("name", "Sarah"), ("place", "Lewiston")),
    V(
        "She works the register at the Hannaford in Brewer and comes to group on her day off.",
        ("name", "Hannaford"),
        ("place", "Brewer"),
    ),
    V("A client, 102 years young, said she had outlived every doctor she ever had.", ("age", "102 years young")),
    V("Her grandson Tyler sat with her during the session and held her hand.", ("name", "Tyler")),
    V("Kowalski, a veteran of two tours, asked to be named only by his surname.", ("name", "Kowalski")),
    V("Last Easter the client finally told her parents about the drinking.", ("date", "Easter")),
    V("The appointment moved to Dec. 5 because of the storm, and she came anyway.", ("date", "Dec. 5")),
    V("He works for the Portland Press Herald and writes about addiction.", ("name", "Portland Press Herald")),
    V("She has lived in Lisbon Falls since she was a girl.", ("place", "Lisbon Falls")),
    V("A client in her 90s said she wanted to feel awe again before she died.", ("age", "in her 90s")),
    V("He spent the Fourth of July alone for the first time and did not drink.", ("date", "Fourth of July")),
    V("He lost his job at Walmart after his third DUI.", ("name", "Walmart")),
    V("Priya was nervous before the first session, so we walked through it twice.", ("name", "Priya")),
    V("A client's son, Diego, translated for her during intake.", ("name", "Diego")),
    V("He grew up on a potato farm outside Presque Isle.", ("place", "Presque Isle")),
)


TUNING_CLEAN: tuple[str, ...] = (
    "May we suggest a short walk after each session?",
    "Hope returned slowly, one small habit at a time.",
    "In 2019 she first tried ketamine-assisted therapy.",
    "Her PHQ-9 score dropped from 22 to 9 over six weeks.",
    "The dose was 0.5 mg/kg, given as an intramuscular injection.",
    "After three sessions, he noticed he could pause before reacting.",
    "Clients usually come in every 2-3 weeks at first, then every 1-2 months.",
    "If you are in crisis, call or text 988 at any time.",
    "Ketamine is not a cure, but Harvest clients often describe it as an opening.",
    "He said the Serenity Prayer before each session.",
    "Sessions are held on Tuesdays and Thursdays, and sometimes on a Saturday.",
    "Many clients travel to us from across Maine and New Hampshire.",
    "Six months later, she was still sober and sleeping through the night.",
    "Will it help with anxiety? For many clients it does.",
    "She tapered off Zoloft with her psychiatrist's support.",
    "Grace and patience were the themes of her integration work.",
    "He asked God for strength and called his Mom afterwards.",
    "A client in her seventies said she felt lighter than she had in decades.",
    "At 1 session per month, the effect lasted about 4 weeks.",
    "The network has conducted more than 500 in-office sessions.",
    "She went from 1x per week to 1x every other month.",
    "Her GAD-7 score and her sleep both improved over the past 30 days.",
    "A client in recovery attends AA meetings twice a week.",
    "He scored 14 on the MADRS at intake and 6 at week twelve.",
    "Medicare does not cover ketamine for depression.",
    "On Monday she told her therapist she wanted to go back to school.",
    "They chose the 90-minute session, which includes time to integrate.",
    "Her mother, now 89, still lives nearby.",
    "In the 1990s he drank every night; today he has a 12-step sponsor.",
    "She rated her anxiety 7/10 before the session and 3/10 after it.",
    "The 1-800 number on the bottle was for the pharmacy, not for us.",
    "Spring felt different this year, she said, because she noticed it.",
    "He paid $1,200 out of pocket because insurance does not cover off-label use.",
    "Harvest's model emphasizes regular points of contact.",
    "The Ketamine Training Center operates three clinics in the United States.",
    "COVID-19 made her isolation worse.",
    "The client, who is in his eighties, still chops his own wood.",
    "Monday through Friday, our staff answer the phone.",
    "Use of ketamine for mental health treatment is considered an “off-label” prescription.",
    "Our clients come from all over New England and Canada.",
    "Her therapist, a former Marine, understood the nightmares.",
    "“Thank you,” she said, and hugged the nurse.",
    "After the session she journaled, walked, and called her AA sponsor.",
    "She told her story at the Unitarian church in town.",
    "The client mentioned her Medicare Advantage plan.",
)


# Written after the rules were frozen; not tuned on.
HELDOUT: tuple[Vignette, ...] = (
    V(
        "Before her first session, Deborah Kessler told us she had not slept a full night since her son's accident.",
        ("name", "Deborah Kessler"),
    ),
    V("A retired lobsterman from Stonington said the sessions let him grieve his boat.", ("place", "Stonington")),
    V(
        "The client, who teaches third grade at Fairmount Elementary, asked us to leave out her school.",
        ("name", "Fairmount Elementary"),
    ),
    V(
        "He rents a room at 88 Pleasant St. in Augusta and walks to every appointment.",
        ("address", "88 Pleasant St."),
        ("place", "Augusta"),
    ),
    V("She asked that any mail go to her sister's house, ZIP 04330.", ("zip", "04330")),
    V("On May 17 she marked one year without a drink.", ("date", "May 17")),
    V("Her husband of sixty years, now 92, came to the integration session with her.", ("age", "92")),
    V("If anything comes up, her daughter can be reached on 207-873-4410.", ("phone", "207-873-4410")),
    V(
        "Her therapist forwarded a note from lisa.marchetti@yahoo.com describing the last month.",
        ("email", "lisa.marchetti@yahoo.com"),
    ),
    V("A page of her intake packet showing 031-62-8840 was scanned into the shared drive.", ("ssn", "031-62-8840")),
    V(
        "The client's BCBS subscriber number, ZGP884120331, appeared in an early draft of this story.",
        ("record", "ZGP884120331"),
    ),
    V(
        "Staff noticed his truck, a green Tacoma with the plate 2291 PV, parked outside every Tuesday.",
        ("vehicle", "2291 PV"),
    ),
    V(
        "A client with a cochlear implant, device serial CI-5520-8841, asked whether the ketamine would affect it.",
        ("device", "CI-5520-8841"),
    ),
    V(
        "After the session she posted about it at facebook.com/jen.whitcomb.77, tagging our clinic.",
        ("url", "facebook.com/jen.whitcomb.77"),
    ),
    V("Her login history shows she joined the video call from 73.219.44.180.", ("ip", "73.219.44.180")),
    V("Jolene started coming to Harvest after her brother's overdose.", ("name", "Jolene")),
    V(
        "A client born in 1931, a ninety-three-year-old widow, said she felt young again.",
        ("age", "ninety-three-year-old"),
    ),
    V(
        "Her case number with the state, 2023-CV-0418, came up when she talked about the custody fight.",
        ("code", "2023-CV-0418"),
    ),
    V(
        "He mentioned his gym membership card number, 660018823, while describing his new routine.",
        ("record", "660018823"),
    ),
    V(
        "A veteran from the Togus VA, whose nurse Mr. Albright referred him, has now finished six sessions.",
        ("name", "Togus"),
        ("name", "Albright"),
    ),
    V(
        "Over Labor Day weekend the client drove to Moosehead Lake with her kids.",
        ("date", "Labor Day"),
        ("place", "Moosehead Lake"),
    ),
    V("She was discharged on 11-02-2021 and called us the same week.", ("date", "11-02-2021")),
    V("Her fax at the law office, (207) 621-3390, is where she wants the invoices sent.", ("phone", "(207) 621-3390")),
    V(
        "The client's Apple Watch, serial FH7XK2Q1N6, logged her heart rate during the session.",
        ("device", "FH7XK2Q1N6"),
    ),
    V(
        "Her new address is 12 Quarry Road, Hallowell, which she shared so we could mail her journal.",
        ("address", "12 Quarry Road"),
        ("place", "Hallowell"),
    ),
    V(
        "A client whose VIN ends in 4GT2J9 (full number 2T1BURHE0JC048519) asked us to delete the parking log.",
        ("vehicle", "4GT2J9"),
        ("vehicle", "2T1BURHE0JC048519"),
    ),
    V("He gave us his Discord handle, nightowl#4471, so the group could check in on him.", ("code", "nightowl#4471")),
    V("Her MAC, a4:5e:60:c2:19:0b, kept appearing on our guest network.", ("device", "a4:5e:60:c2:19:0b")),
    V("Anna-Lise, his partner, joined him for the preparation call.", ("name", "Anna-Lise")),
    V("A client whose state nursing license is RN 442918 asked to stay anonymous.", ("record", "RN 442918")),
    V("She asked that we use mkane.rn@protonmail.com for appointment reminders.", ("email", "mkane.rn@protonmail.com")),
    V("Her old apartment was in the 04005 ZIP code, near the mill.", ("zip", "04005")),
    V("His Social Security number (401-88-2291) was read aloud by mistake in group.", ("ssn", "401-88-2291")),
    V(
        "A client sent a link to her fundraiser, gofund.me/4e1b22c9, for her son's treatment.",
        ("url", "gofund.me/4e1b22c9"),
    ),
    V(
        "Our server logs showed requests from 2600:1702:5a1:90::1f during her account setup.",
        ("ip", "2600:1702:5a1:90::1f"),
    ),
)

HELDOUT_CLEAN: tuple[str, ...] = (
    "She started with two sessions a week and tapered to one a month.",
    "Ketamine gave him enough distance from the craving to choose differently.",
    "By the fourth session, she was sleeping six hours a night.",
    "Our intake form asks about medications, including MAOIs and lithium.",
    "He describes the first twenty minutes as the hardest part.",
    "Many clients find that journaling the day after helps integration.",
    "She said the experience felt like watching her life from a balcony.",
    "In 2021, about a third of our clients came for alcohol use.",
    "Dosing is usually between 0.5 and 1 mg/kg.",
    "Afterwards he called his sponsor, as he had planned with his therapist.",
    "The Suicide and Crisis Lifeline is 988, and it is free.",
    "A client in his sixties told us he finally felt like himself.",
    "Winter is hard for many of our clients in Maine.",
    "Faith, for her, became something practical rather than abstract.",
    "Ten days later she returned for a booster session.",
    "The American Psychiatric Association has not endorsed ketamine for alcohol use.",
)

# --- scoring, shared by the tests and bench/deid_recall.py ---------------------------------------


@dataclass
class Score:
    per_kind: dict[str, list[int]]  # kind -> [found, total]
    caught_any_kind: int  # identifiers overlapped by a finding of any kind
    total: int
    missed: list[tuple[str, str, str]]  # (kind, identifier, vignette)
    extra: list[tuple[str, str, str]]  # findings on identifying vignettes that match no identifier
    clean_sentences: int
    false_alarms: list[tuple[str, str, str]]  # (kind, text, clean sentence)

    @property
    def found(self) -> int:
        return sum(f for f, _ in self.per_kind.values())

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else 1.0


def score(find, vignettes: tuple[Vignette, ...], clean: tuple[str, ...]) -> Score:
    """An identifier counts as found when a finding of the same kind overlaps it."""
    s = Score({}, 0, 0, [], [], len(clean), [])
    for v in vignettes:
        findings = find(v.text)
        spans = v.spans()
        for kind, start, end in spans:
            tally = s.per_kind.setdefault(kind, [0, 0])
            tally[1] += 1
            s.total += 1
            overlapping = [f for f in findings if f.start < end and start < f.end]
            if any(f.kind == kind for f in overlapping):
                tally[0] += 1
            else:
                s.missed.append((kind, v.text[start:end], v.text))
            s.caught_any_kind += bool(overlapping)
        for f in findings:
            if not any(f.start < end and start < f.end for _, start, end in spans):
                s.extra.append((f.kind, f.text, v.text))
    for text in clean:
        s.false_alarms.extend((f.kind, f.text, text) for f in find(text))
    return s
