"""Word lists for the de-identification gate: the generated data files, read once, and curated lists.

The generated files come from tools/build_deid_data.py (provenance and licences are in their headers).
Curated lists live here because they encode judgement about clinic prose, not facts from a source.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
from collections.abc import Iterator
from dataclasses import dataclass


def _data_lines(name: str) -> Iterator[str]:
    raw = (importlib.resources.files(__package__) / "data" / name).read_bytes()
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            yield line


@dataclass(frozen=True)
class Lexicon:
    zipf: dict[str, float]  # lower-case word -> Zipf score; absent means rarer than the table's floor
    first_names: frozenset[str]  # lower-case
    wordlike_names: frozenset[str]  # lower-case first names that are also common words (Hope, May)
    places: frozenset[str]  # lower-case US cities and counties, multi-word ones included
    large_areas: frozenset[str]  # lower-case states and countries: never identifying on their own
    max_place_words: int

    def score(self, word: str) -> float:
        return self.zipf.get(word.lower(), 0.0)


@functools.cache
def lexicon() -> Lexicon:
    zipf: dict[str, float] = {}
    for line in _data_lines("deid_zipf.txt.gz"):
        word, score = line.split("\t")
        zipf[word] = float(score)
    names: set[str] = set()
    wordlike: set[str] = set()
    for line in _data_lines("deid_first_names.txt.gz"):
        name, _, flag = line.partition("\t")
        names.add(name.lower())
        if flag == "word":
            wordlike.add(name.lower())
    places: set[str] = set()
    large: set[str] = set()
    for line in _data_lines("deid_places.txt.gz"):
        kind, name = line.split("\t")
        (large if kind in ("state", "country") else places).add(name.lower())
    return Lexicon(
        zipf=zipf,
        first_names=frozenset(names),
        wordlike_names=frozenset(wordlike),
        places=frozenset(places - large),
        large_areas=frozenset(large | EXTRA_LARGE_AREAS),
        max_place_words=max(len(p.split()) for p in places | large),
    )


def _words(text: str) -> frozenset[str]:
    return frozenset(text.lower().split())


MONTHS = _words("January February March April May June July August September October November December")
WEEKDAYS = _words(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday "
    "Mondays Tuesdays Wednesdays Thursdays Fridays Saturdays Sundays"
)

# Titles whose next capitalised word is a person's name even at a sentence start.
TITLES = _words(
    "Dr Mr Mrs Ms Mx Miss Nurse Prof Professor Rev Reverend Pastor Father Fr Sister Rabbi Imam Deacon "
    "Coach Officer Judge Sgt Sergeant Capt Captain Lt Lieutenant Aunt Auntie Uncle Grandma Grandpa "
    "Granny Nana Cousin Senator Governor Mayor Sheriff Deputy Chaplain"
)

# Abbreviations whose full stop does not end a sentence.
ABBREVIATIONS = _words(
    "dr mr mrs ms mx prof rev fr st mt ft jr sr lt sgt capt col gen gov sen rep hon vs etc e.g i.e "
    "a.m p.m no inc co corp ltd ave rd blvd apt approx dept"
)

# Capitalised only at a sentence start (or in a heading); never a name on their own.
STOPWORDS = _words(
    "a an the this that these those there here it its i i'm me my mine we us our you your he him his "
    "she her hers they them their theirs who whom whose what which when where why how and but or nor so "
    "yet for if then than as at by in on of off to from with without within into onto over under after "
    "before since until while during about above below between among through though although because "
    "once not no yes all any some many most much more less few each every both either neither one two "
    "three four five six seven eight nine ten eleven twelve twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred first second third last next now later today tonight yesterday tomorrow "
    "soon still also just only even ever never always often sometimes again instead rather perhaps "
    "maybe please thank thanks hello hi dear okay ok oh well let lets like can could would should "
    "will shall may might must do does did done is are was were be been being have has had having "
    "get got go went come came see saw say said tell told ask asked"
)

# Never identifying on their own, wherever they stand (compared in lower case).
ALLOWED = _words(
    # the clinic, its treatment and the drugs clients name
    "Harvest Ketamine Esketamine Spravato Ketalar Psilocybin MDMA LSD Ayahuasca Zoloft Sertraline "
    "Prozac Fluoxetine Lexapro Escitalopram Celexa Citalopram Paxil Paroxetine Wellbutrin Bupropion "
    "Effexor Venlafaxine Cymbalta Duloxetine Trintellix Xanax Alprazolam Klonopin Clonazepam Ativan "
    "Lorazepam Valium Adderall Ritalin Suboxone Buprenorphine Methadone Narcan Naloxone Naltrexone "
    "Vivitrol Antabuse Chantix Ambien Lamictal Lamotrigine Seroquel Abilify Lithium Lyrica Gabapentin "
    "Neurontin Tylenol Advil Benadryl Zofran Ondansetron Prazosin Trazodone Remeron Buspar Covid "
    "Covid-19 Medicare Medicaid MaineCare Tricare Telehealth Zoom FaceTime Google Instagram Facebook "
    "TikTok YouTube Netflix Spotify Internet iPhone Android Fitbit Wi-Fi WiFi Bluetooth "
    "Route Interstate Highway "
    # clinical words rare enough in general English to look like surnames at a sentence start
    "Neurofeedback Breathwork Anhedonia Psychedelic Psychedelics Microdosing Microdose Somatic "
    "Dissociative Anxiolytic Antidepressant Antidepressants Dysphoria Sublingual Intramuscular "
    "Intranasal Lozenge Lozenges Troche Troches Benzos Benzodiazepine Benzodiazepines Fentanyl Opioid "
    "Opioids Glutamate Serotonin Dopamine Ketamine-assisted Psychedelic-assisted Sobriety Detox Rehab "
    "Relapse Cravings Alcoholism Neuroplasticity Mindfulness Psychotherapy Psychiatry Ideation "
    # faith, family and address words
    "God Lord Jesus Christ Buddha Allah Bible Scripture Gospel Psalm Psalms Christian Christians "
    "Catholic Protestant Jewish Muslim Buddhist Hindu Zen Quaker Unitarian Methodist Baptist Lutheran "
    "Episcopal Episcopalian Presbyterian Mormon Orthodox Evangelical Pentecostal Adventist Mass Sabbath "
    "Heaven "
    "Mom Mum Mommy Mama Dad Daddy Papa Pop Mother Father Grandmother Grandfather Grandma Grandpa Nana "
    "Granny Gramps Aunt Auntie Uncle Sis Bro Honey Sweetheart Sir Madam Ma'am Doc "
    # titles and roles
    "Dr Mr Mrs Ms Mx Miss Nurse Prof Professor Rev Reverend Pastor Fr Sister Brother Rabbi Imam "
    "Deacon Coach Officer Judge Sergeant Captain Senator Governor Mayor Sheriff Deputy Chaplain "
    "Therapist Counselor Counsellor Doctor Psychiatrist Client Clients Patient Veteran Veterans "
    # regions, peoples and languages, which are larger than a state
    "North South East West Northern Southern Eastern Western Northeast Northwest Southeast Southwest "
    "Northeastern Midwest Midwestern Central Pacific Atlantic Gulf Coast Appalachia Appalachian "
    "Europe European Africa African Asia Asian America Americas American Americans "
    "Caribbean Latin Latino Latina Latinx Hispanic Native Indigenous Black White Arab Jew Irish "
    "English Spanish French German Italian Portuguese Russian Ukrainian Polish Greek Chinese Japanese "
    "Korean Vietnamese Filipino Indian Mexican Canadian British Scottish Somali Haitian Cambodian "
    "Army Navy Marines Marine Corps Air Force Guard Coast National Reserve Reserves "
    # institution words, which name an organisation only next to a distinctive word
    "Hospital Clinic Center Centre Medical Health Healthcare University College School Academy "
    "Church Temple Synagogue Mosque Department Company Inc LLC Corp Corporation Bank Foundation "
    "Institute Association Society Group Services Agency Office Store Market Restaurant Cafe Diner "
    "Pharmacy Gym Library Museum Mill Factory Farm Shelter Prison Jail Program Project Network "
    "Training Recovery Community General Regional Memorial Behavioral Mental Care Family Services "
    # places' kind words
    "Lake Pond River Stream Brook Creek Mountain Mount Mt Hill Hills Valley Island Islands Isle Bay "
    "Harbor Harbour Beach Falls Springs Park Forest Woods Cove Point Peninsula Canyon County Parish "
    "Borough Township Town City Village Heights Downtown State States United Nation Nations "
    # clinical and everyday capitalised words
    "Schedule III DSM ICD PTSD OCD ADHD AA NA Anonymous Alcoholics Narcotics Twelve Step Steps "
    "Prayer Meditation Yoga Reiki EMDR IFS DBT CBT Integration Intake Session Sessions Spring Summer "
    "Fall Autumn Winter Today Tonight Thank Thanks Okay OK Dear Hello Hi Yes No Note Notes Update "
    "Updates Subscribe Newsletter Story Stories Results Week Month Year Day Morning Evening Night"
)

# Words of ALLOWED that name an organisation or a place when a distinctive word stands before them.
INSTITUTION_WORDS = _words(
    "Hospital Clinic Center Centre University College School Academy Church Temple Synagogue Mosque "
    "Department Company Inc LLC Corp Corporation Bank Foundation Institute Association Society Group "
    "Services Agency Office Store Market Restaurant Cafe Diner Pharmacy Gym Library Museum Mill "
    "Factory Farm Shelter Prison Jail Works Industries Hardware Motors Bakery Brewery Shipyard"
)
GEO_WORDS = _words(
    "Lake Pond River Stream Brook Creek Mountain Mount Hill Hills Valley Island Islands Isle Bay Harbor "
    "Harbour Beach Falls Springs Park Forest Woods Cove Point Peninsula Canyon County Parish Borough "
    "Township Town City Village Heights"
)
STREET_SUFFIXES = _words(
    "Street St Avenue Ave Road Rd Lane Ln Drive Dr Boulevard Blvd Court Ct Place Pl Way Terrace Ter "
    "Circle Cir Highway Hwy Parkway Pkwy Trail Trl Square Sq Alley Loop Row Pike Turnpike Path "
    "Crossing Extension Ext Ridge Run"
)

# Phrases that are capitalised but harmless (compared case-insensitively, whole words).
ALLOWED_PHRASES = (
    "Serenity Prayer",
    "Lord's Prayer",
    "Higher Power",
    "Big Book",
    "Golden Rule",
    "Twelve Steps",
    "Alcoholics Anonymous",
    "Narcotics Anonymous",
    "Al-Anon",
    "Nar-Anon",
    "SMART Recovery",
    "Celebrate Recovery",
    "Refuge Recovery",
    "Suicide and Crisis Lifeline",
    "Crisis Text Line",
    "Ketamine Training Center",
    "Johnson and Johnson",
    "Johnson & Johnson",
    "United States",
    "Schedule III",
    "Veterans Affairs",
    "Inner Child",
    "New Year",
    "Medicare Advantage",
)

# Reached as countries in the place data; these extra names are larger than a state as well.
EXTRA_LARGE_AREAS = frozenset(
    {"usa", "us", "u.s", "america", "new england", "england", "scotland", "wales", "washington dc"}
)

# Prepositions after which a capitalised word is more likely a place than a person.
LOCATIVES = _words("in from near to outside around toward towards into across through visiting of at")

HOLIDAYS = (
    "Christmas Eve",
    "Christmas Day",
    "Christmas",
    "Xmas",
    "Thanksgiving",
    "Easter Sunday",
    "Easter",
    "Good Friday",
    "Palm Sunday",
    "Ash Wednesday",
    "Hanukkah",
    "Chanukah",
    "Hanukah",
    "Passover",
    "Rosh Hashanah",
    "Yom Kippur",
    "Ramadan",
    "Eid al-Fitr",
    "Eid al-Adha",
    "Eid",
    "Diwali",
    "Kwanzaa",
    "Halloween",
    "New Year's Eve",
    "New Year's Day",
    "New Years Eve",
    "New Years Day",
    "Independence Day",
    "Fourth of July",
    "Memorial Day",
    "Labor Day",
    "Veterans Day",
    "Veterans' Day",
    "Valentine's Day",
    "Valentines Day",
    "Mother's Day",
    "Mothers Day",
    "Father's Day",
    "Fathers Day",
    "St. Patrick's Day",
    "Saint Patrick's Day",
    "St Patrick's Day",
    "MLK Day",
    "Martin Luther King Jr. Day",
    "Martin Luther King Day",
    "Juneteenth",
    "Presidents' Day",
    "Presidents Day",
    "President's Day",
    "Columbus Day",
    "Indigenous Peoples' Day",
    "Patriots' Day",
    "Patriots Day",
    "Groundhog Day",
    "Lunar New Year",
    "Chinese New Year",
    "Black Friday",
    "Election Day",
    "Boxing Day",
    "Super Bowl Sunday",
)

# Words after a number that make it a quantity rather than an identifier.
UNITS = _words(
    "mg milligram milligrams mcg g gram grams kg kilograms lb lbs pound pounds oz ml cc l liters "
    "litres mile miles km kilometers feet foot ft inches meters steps calories kcal dollars usd "
    "percent people clients patients sessions hours hrs minutes mins seconds days weeks months years "
    "times words pages units doses pills tablets beds staff members subscribers visits reps"
)

# Context words that say what kind of identifier the following code is. Checked on the lower-cased
# text just before the code, longest phrases first.
CODE_CONTEXT: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "vehicle",
        (
            "license plate",
            "licence plate",
            "plate number",
            "plates",
            "plate",
            "tag number",
            "vin",
            "vehicle identification number",
            "vehicle",
            "registration",
            "car",
            "truck",
            "pickup",
        ),
    ),
    (
        "device",
        (
            "serial number",
            "serial no",
            "serial",
            "s/n",
            "sn",
            "device id",
            "device number",
            "imei",
            "udi",
            "mac address",
            "mac",
            "model number",
            "pump",
            "pacemaker",
            "implant",
            "cpap",
            "monitor",
            "device",
        ),
    ),
    (
        "record",
        (
            "medical record number",
            "medical record",
            "record number",
            "mrn",
            "chart number",
            "chart",
            "patient id",
            "patient number",
            "member id",
            "member number",
            "member",
            "subscriber id",
            "policy number",
            "policy",
            "group number",
            "health plan",
            "insurance id",
            "insurance",
            "medicaid",
            "medicare",
            "mainecare",
            "account number",
            "account",
            "acct",
            "routing number",
            "card number",
            "credit card",
            "driver's license",
            "drivers license",
            "driver’s license",
            "license number",
            "licence number",
            "license",
            "licence",
            "certificate number",
            "certificate",
            "cert",
            "dea",
            "npi",
            "passport",
            "prescription number",
            "rx",
        ),
    ),
    (
        "code",
        (
            "badge number",
            "badge",
            "employee id",
            "employee number",
            "employee",
            "student id",
            "case number",
            "confirmation code",
            "confirmation number",
            "confirmation",
            "ticket",
            "order",
            "code",
            "pin",
            "id",
            "number",
            "no.",
            "#",
        ),
    ),
)
