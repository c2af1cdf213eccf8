"""ISO 3166-1 countries by alpha-2 code, alpha-3 code and English name, for the "did you mean" of a `country`
that is not an alpha-2 code: `GER`, `DEU` and `Germany` suggest `DE`.

Imported only for such a message. The list is ISO 3166-1's 249 entries (the same codes as
iso3166-alpha2.txt, which the loader checks against; tests/unit/test_config.py holds them equal), each with its
alpha-3 code and its English names: ISO's short name first, then the common and the official name where they
differ (as Debian's iso-codes lists them). ALIASES adds the codes and names people write that are neither:
sports codes (`GER`, `SUI`, `NED`), older or informal names (`Holland`, `Turkey`, `Ivory Coast`).
"""

from __future__ import annotations

import functools
import unicodedata

#: (alpha-2, alpha-3, English names: ISO's short name first).
COUNTRIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("AD", "AND", ("Andorra", "Principality of Andorra")),
    ("AE", "ARE", ("United Arab Emirates",)),
    ("AF", "AFG", ("Afghanistan", "Islamic Republic of Afghanistan")),
    ("AG", "ATG", ("Antigua and Barbuda",)),
    ("AI", "AIA", ("Anguilla",)),
    ("AL", "ALB", ("Albania", "Republic of Albania")),
    ("AM", "ARM", ("Armenia", "Republic of Armenia")),
    ("AO", "AGO", ("Angola", "Republic of Angola")),
    ("AQ", "ATA", ("Antarctica",)),
    ("AR", "ARG", ("Argentina", "Argentine Republic")),
    ("AS", "ASM", ("American Samoa",)),
    ("AT", "AUT", ("Austria", "Republic of Austria")),
    ("AU", "AUS", ("Australia",)),
    ("AW", "ABW", ("Aruba",)),
    ("AX", "ALA", ("Åland Islands",)),
    ("AZ", "AZE", ("Azerbaijan", "Republic of Azerbaijan")),
    ("BA", "BIH", ("Bosnia and Herzegovina", "Republic of Bosnia and Herzegovina")),
    ("BB", "BRB", ("Barbados",)),
    ("BD", "BGD", ("Bangladesh", "People's Republic of Bangladesh")),
    ("BE", "BEL", ("Belgium", "Kingdom of Belgium")),
    ("BF", "BFA", ("Burkina Faso",)),
    ("BG", "BGR", ("Bulgaria", "Republic of Bulgaria")),
    ("BH", "BHR", ("Bahrain", "Kingdom of Bahrain")),
    ("BI", "BDI", ("Burundi", "Republic of Burundi")),
    ("BJ", "BEN", ("Benin", "Republic of Benin")),
    ("BL", "BLM", ("Saint Barthélemy",)),
    ("BM", "BMU", ("Bermuda",)),
    ("BN", "BRN", ("Brunei Darussalam",)),
    ("BO", "BOL", ("Bolivia, Plurinational State of", "Bolivia", "Plurinational State of Bolivia")),
    ("BQ", "BES", ("Bonaire, Sint Eustatius and Saba",)),
    ("BR", "BRA", ("Brazil", "Federative Republic of Brazil")),
    ("BS", "BHS", ("Bahamas", "Commonwealth of the Bahamas")),
    ("BT", "BTN", ("Bhutan", "Kingdom of Bhutan")),
    ("BV", "BVT", ("Bouvet Island",)),
    ("BW", "BWA", ("Botswana", "Republic of Botswana")),
    ("BY", "BLR", ("Belarus", "Republic of Belarus")),
    ("BZ", "BLZ", ("Belize",)),
    ("CA", "CAN", ("Canada",)),
    ("CC", "CCK", ("Cocos (Keeling) Islands",)),
    ("CD", "COD", ("Congo, The Democratic Republic of the",)),
    ("CF", "CAF", ("Central African Republic",)),
    ("CG", "COG", ("Congo", "Republic of the Congo")),
    ("CH", "CHE", ("Switzerland", "Swiss Confederation")),
    ("CI", "CIV", ("Côte d'Ivoire", "Republic of Côte d'Ivoire")),
    ("CK", "COK", ("Cook Islands",)),
    ("CL", "CHL", ("Chile", "Republic of Chile")),
    ("CM", "CMR", ("Cameroon", "Republic of Cameroon")),
    ("CN", "CHN", ("China", "People's Republic of China")),
    ("CO", "COL", ("Colombia", "Republic of Colombia")),
    ("CR", "CRI", ("Costa Rica", "Republic of Costa Rica")),
    ("CU", "CUB", ("Cuba", "Republic of Cuba")),
    ("CV", "CPV", ("Cabo Verde", "Republic of Cabo Verde")),
    ("CW", "CUW", ("Curaçao",)),
    ("CX", "CXR", ("Christmas Island",)),
    ("CY", "CYP", ("Cyprus", "Republic of Cyprus")),
    ("CZ", "CZE", ("Czechia", "Czech Republic")),
    ("DE", "DEU", ("Germany", "Federal Republic of Germany")),
    ("DJ", "DJI", ("Djibouti", "Republic of Djibouti")),
    ("DK", "DNK", ("Denmark", "Kingdom of Denmark")),
    ("DM", "DMA", ("Dominica", "Commonwealth of Dominica")),
    ("DO", "DOM", ("Dominican Republic",)),
    ("DZ", "DZA", ("Algeria", "People's Democratic Republic of Algeria")),
    ("EC", "ECU", ("Ecuador", "Republic of Ecuador")),
    ("EE", "EST", ("Estonia", "Republic of Estonia")),
    ("EG", "EGY", ("Egypt", "Arab Republic of Egypt")),
    ("EH", "ESH", ("Western Sahara",)),
    ("ER", "ERI", ("Eritrea", "the State of Eritrea")),
    ("ES", "ESP", ("Spain", "Kingdom of Spain")),
    ("ET", "ETH", ("Ethiopia", "Federal Democratic Republic of Ethiopia")),
    ("FI", "FIN", ("Finland", "Republic of Finland")),
    ("FJ", "FJI", ("Fiji", "Republic of Fiji")),
    ("FK", "FLK", ("Falkland Islands (Malvinas)",)),
    ("FM", "FSM", ("Micronesia, Federated States of", "Federated States of Micronesia")),
    ("FO", "FRO", ("Faroe Islands",)),
    ("FR", "FRA", ("France", "French Republic")),
    ("GA", "GAB", ("Gabon", "Gabonese Republic")),
    ("GB", "GBR", ("United Kingdom", "United Kingdom of Great Britain and Northern Ireland")),
    ("GD", "GRD", ("Grenada",)),
    ("GE", "GEO", ("Georgia",)),
    ("GF", "GUF", ("French Guiana",)),
    ("GG", "GGY", ("Guernsey",)),
    ("GH", "GHA", ("Ghana", "Republic of Ghana")),
    ("GI", "GIB", ("Gibraltar",)),
    ("GL", "GRL", ("Greenland",)),
    ("GM", "GMB", ("Gambia", "Republic of the Gambia")),
    ("GN", "GIN", ("Guinea", "Republic of Guinea")),
    ("GP", "GLP", ("Guadeloupe",)),
    ("GQ", "GNQ", ("Equatorial Guinea", "Republic of Equatorial Guinea")),
    ("GR", "GRC", ("Greece", "Hellenic Republic")),
    ("GS", "SGS", ("South Georgia and the South Sandwich Islands",)),
    ("GT", "GTM", ("Guatemala", "Republic of Guatemala")),
    ("GU", "GUM", ("Guam",)),
    ("GW", "GNB", ("Guinea-Bissau", "Republic of Guinea-Bissau")),
    ("GY", "GUY", ("Guyana", "Republic of Guyana")),
    ("HK", "HKG", ("Hong Kong", "Hong Kong Special Administrative Region of China")),
    ("HM", "HMD", ("Heard Island and McDonald Islands",)),
    ("HN", "HND", ("Honduras", "Republic of Honduras")),
    ("HR", "HRV", ("Croatia", "Republic of Croatia")),
    ("HT", "HTI", ("Haiti", "Republic of Haiti")),
    ("HU", "HUN", ("Hungary",)),
    ("ID", "IDN", ("Indonesia", "Republic of Indonesia")),
    ("IE", "IRL", ("Ireland",)),
    ("IL", "ISR", ("Israel", "State of Israel")),
    ("IM", "IMN", ("Isle of Man",)),
    ("IN", "IND", ("India", "Republic of India")),
    ("IO", "IOT", ("British Indian Ocean Territory",)),
    ("IQ", "IRQ", ("Iraq", "Republic of Iraq")),
    ("IR", "IRN", ("Iran, Islamic Republic of", "Iran", "Islamic Republic of Iran")),
    ("IS", "ISL", ("Iceland", "Republic of Iceland")),
    ("IT", "ITA", ("Italy", "Italian Republic")),
    ("JE", "JEY", ("Jersey",)),
    ("JM", "JAM", ("Jamaica",)),
    ("JO", "JOR", ("Jordan", "Hashemite Kingdom of Jordan")),
    ("JP", "JPN", ("Japan",)),
    ("KE", "KEN", ("Kenya", "Republic of Kenya")),
    ("KG", "KGZ", ("Kyrgyzstan", "Kyrgyz Republic")),
    ("KH", "KHM", ("Cambodia", "Kingdom of Cambodia")),
    ("KI", "KIR", ("Kiribati", "Republic of Kiribati")),
    ("KM", "COM", ("Comoros", "Union of the Comoros")),
    ("KN", "KNA", ("Saint Kitts and Nevis",)),
    (
        "KP",
        "PRK",
        ("Korea, Democratic People's Republic of", "North Korea", "Democratic People's Republic of Korea"),
    ),
    ("KR", "KOR", ("Korea, Republic of", "South Korea")),
    ("KW", "KWT", ("Kuwait", "State of Kuwait")),
    ("KY", "CYM", ("Cayman Islands",)),
    ("KZ", "KAZ", ("Kazakhstan", "Republic of Kazakhstan")),
    ("LA", "LAO", ("Lao People's Democratic Republic", "Laos")),
    ("LB", "LBN", ("Lebanon", "Lebanese Republic")),
    ("LC", "LCA", ("Saint Lucia",)),
    ("LI", "LIE", ("Liechtenstein", "Principality of Liechtenstein")),
    ("LK", "LKA", ("Sri Lanka", "Democratic Socialist Republic of Sri Lanka")),
    ("LR", "LBR", ("Liberia", "Republic of Liberia")),
    ("LS", "LSO", ("Lesotho", "Kingdom of Lesotho")),
    ("LT", "LTU", ("Lithuania", "Republic of Lithuania")),
    ("LU", "LUX", ("Luxembourg", "Grand Duchy of Luxembourg")),
    ("LV", "LVA", ("Latvia", "Republic of Latvia")),
    ("LY", "LBY", ("Libya",)),
    ("MA", "MAR", ("Morocco", "Kingdom of Morocco")),
    ("MC", "MCO", ("Monaco", "Principality of Monaco")),
    ("MD", "MDA", ("Moldova, Republic of", "Moldova", "Republic of Moldova")),
    ("ME", "MNE", ("Montenegro",)),
    ("MF", "MAF", ("Saint Martin (French part)",)),
    ("MG", "MDG", ("Madagascar", "Republic of Madagascar")),
    ("MH", "MHL", ("Marshall Islands", "Republic of the Marshall Islands")),
    ("MK", "MKD", ("North Macedonia", "Republic of North Macedonia")),
    ("ML", "MLI", ("Mali", "Republic of Mali")),
    ("MM", "MMR", ("Myanmar", "Republic of Myanmar")),
    ("MN", "MNG", ("Mongolia",)),
    ("MO", "MAC", ("Macao", "Macao Special Administrative Region of China")),
    ("MP", "MNP", ("Northern Mariana Islands", "Commonwealth of the Northern Mariana Islands")),
    ("MQ", "MTQ", ("Martinique",)),
    ("MR", "MRT", ("Mauritania", "Islamic Republic of Mauritania")),
    ("MS", "MSR", ("Montserrat",)),
    ("MT", "MLT", ("Malta", "Republic of Malta")),
    ("MU", "MUS", ("Mauritius", "Republic of Mauritius")),
    ("MV", "MDV", ("Maldives", "Republic of Maldives")),
    ("MW", "MWI", ("Malawi", "Republic of Malawi")),
    ("MX", "MEX", ("Mexico", "United Mexican States")),
    ("MY", "MYS", ("Malaysia",)),
    ("MZ", "MOZ", ("Mozambique", "Republic of Mozambique")),
    ("NA", "NAM", ("Namibia", "Republic of Namibia")),
    ("NC", "NCL", ("New Caledonia",)),
    ("NE", "NER", ("Niger", "Republic of the Niger")),
    ("NF", "NFK", ("Norfolk Island",)),
    ("NG", "NGA", ("Nigeria", "Federal Republic of Nigeria")),
    ("NI", "NIC", ("Nicaragua", "Republic of Nicaragua")),
    ("NL", "NLD", ("Netherlands", "Kingdom of the Netherlands")),
    ("NO", "NOR", ("Norway", "Kingdom of Norway")),
    ("NP", "NPL", ("Nepal", "Federal Democratic Republic of Nepal")),
    ("NR", "NRU", ("Nauru", "Republic of Nauru")),
    ("NU", "NIU", ("Niue",)),
    ("NZ", "NZL", ("New Zealand",)),
    ("OM", "OMN", ("Oman", "Sultanate of Oman")),
    ("PA", "PAN", ("Panama", "Republic of Panama")),
    ("PE", "PER", ("Peru", "Republic of Peru")),
    ("PF", "PYF", ("French Polynesia",)),
    ("PG", "PNG", ("Papua New Guinea", "Independent State of Papua New Guinea")),
    ("PH", "PHL", ("Philippines", "Republic of the Philippines")),
    ("PK", "PAK", ("Pakistan", "Islamic Republic of Pakistan")),
    ("PL", "POL", ("Poland", "Republic of Poland")),
    ("PM", "SPM", ("Saint Pierre and Miquelon",)),
    ("PN", "PCN", ("Pitcairn",)),
    ("PR", "PRI", ("Puerto Rico",)),
    ("PS", "PSE", ("Palestine, State of", "the State of Palestine")),
    ("PT", "PRT", ("Portugal", "Portuguese Republic")),
    ("PW", "PLW", ("Palau", "Republic of Palau")),
    ("PY", "PRY", ("Paraguay", "Republic of Paraguay")),
    ("QA", "QAT", ("Qatar", "State of Qatar")),
    ("RE", "REU", ("Réunion",)),
    ("RO", "ROU", ("Romania",)),
    ("RS", "SRB", ("Serbia", "Republic of Serbia")),
    ("RU", "RUS", ("Russian Federation",)),
    ("RW", "RWA", ("Rwanda", "Rwandese Republic")),
    ("SA", "SAU", ("Saudi Arabia", "Kingdom of Saudi Arabia")),
    ("SB", "SLB", ("Solomon Islands",)),
    ("SC", "SYC", ("Seychelles", "Republic of Seychelles")),
    ("SD", "SDN", ("Sudan", "Republic of the Sudan")),
    ("SE", "SWE", ("Sweden", "Kingdom of Sweden")),
    ("SG", "SGP", ("Singapore", "Republic of Singapore")),
    ("SH", "SHN", ("Saint Helena, Ascension and Tristan da Cunha",)),
    ("SI", "SVN", ("Slovenia", "Republic of Slovenia")),
    ("SJ", "SJM", ("Svalbard and Jan Mayen",)),
    ("SK", "SVK", ("Slovakia", "Slovak Republic")),
    ("SL", "SLE", ("Sierra Leone", "Republic of Sierra Leone")),
    ("SM", "SMR", ("San Marino", "Republic of San Marino")),
    ("SN", "SEN", ("Senegal", "Republic of Senegal")),
    ("SO", "SOM", ("Somalia", "Federal Republic of Somalia")),
    ("SR", "SUR", ("Suriname", "Republic of Suriname")),
    ("SS", "SSD", ("South Sudan", "Republic of South Sudan")),
    ("ST", "STP", ("Sao Tome and Principe", "Democratic Republic of Sao Tome and Principe")),
    ("SV", "SLV", ("El Salvador", "Republic of El Salvador")),
    ("SX", "SXM", ("Sint Maarten (Dutch part)",)),
    ("SY", "SYR", ("Syrian Arab Republic", "Syria")),
    ("SZ", "SWZ", ("Eswatini", "Kingdom of Eswatini")),
    ("TC", "TCA", ("Turks and Caicos Islands",)),
    ("TD", "TCD", ("Chad", "Republic of Chad")),
    ("TF", "ATF", ("French Southern Territories",)),
    ("TG", "TGO", ("Togo", "Togolese Republic")),
    ("TH", "THA", ("Thailand", "Kingdom of Thailand")),
    ("TJ", "TJK", ("Tajikistan", "Republic of Tajikistan")),
    ("TK", "TKL", ("Tokelau",)),
    ("TL", "TLS", ("Timor-Leste", "Democratic Republic of Timor-Leste")),
    ("TM", "TKM", ("Turkmenistan",)),
    ("TN", "TUN", ("Tunisia", "Republic of Tunisia")),
    ("TO", "TON", ("Tonga", "Kingdom of Tonga")),
    ("TR", "TUR", ("Türkiye", "Republic of Türkiye")),
    ("TT", "TTO", ("Trinidad and Tobago", "Republic of Trinidad and Tobago")),
    ("TV", "TUV", ("Tuvalu",)),
    ("TW", "TWN", ("Taiwan, Province of China", "Taiwan")),
    ("TZ", "TZA", ("Tanzania, United Republic of", "Tanzania", "United Republic of Tanzania")),
    ("UA", "UKR", ("Ukraine",)),
    ("UG", "UGA", ("Uganda", "Republic of Uganda")),
    ("UM", "UMI", ("United States Minor Outlying Islands",)),
    ("US", "USA", ("United States", "United States of America")),
    ("UY", "URY", ("Uruguay", "Eastern Republic of Uruguay")),
    ("UZ", "UZB", ("Uzbekistan", "Republic of Uzbekistan")),
    ("VA", "VAT", ("Holy See (Vatican City State)",)),
    ("VC", "VCT", ("Saint Vincent and the Grenadines",)),
    ("VE", "VEN", ("Venezuela, Bolivarian Republic of", "Venezuela", "Bolivarian Republic of Venezuela")),
    ("VG", "VGB", ("Virgin Islands, British", "British Virgin Islands")),
    ("VI", "VIR", ("Virgin Islands, U.S.", "Virgin Islands of the United States")),
    ("VN", "VNM", ("Viet Nam", "Vietnam", "Socialist Republic of Viet Nam")),
    ("VU", "VUT", ("Vanuatu", "Republic of Vanuatu")),
    ("WF", "WLF", ("Wallis and Futuna",)),
    ("WS", "WSM", ("Samoa", "Independent State of Samoa")),
    ("YE", "YEM", ("Yemen", "Republic of Yemen")),
    ("YT", "MYT", ("Mayotte",)),
    ("ZA", "ZAF", ("South Africa", "Republic of South Africa")),
    ("ZM", "ZMB", ("Zambia", "Republic of Zambia")),
    ("ZW", "ZWE", ("Zimbabwe", "Republic of Zimbabwe")),
)

#: Codes and names that are neither an alpha-3 code nor one of the names above, as people write them. A code here
#: is never another country's alpha-3 code (tests/unit/test_config.py checks).
ALIASES: dict[str, str] = {
    # two-letter codes that ISO spells otherwise
    "UK": "GB",
    "EL": "GR",
    "EN": "GB",
    # sports (IOC, FIFA) and other three-letter codes that are not ISO alpha-3
    "GER": "DE",
    "SUI": "CH",
    "NED": "NL",
    "POR": "PT",
    "DEN": "DK",
    "CRO": "HR",
    "GRE": "GR",
    "RSA": "ZA",
    "UAE": "AE",
    "KSA": "SA",
    "ENG": "GB",
    "BUL": "BG",
    "LAT": "LV",
    "SLO": "SI",
    "MAS": "MY",
    "PHI": "PH",
    "VIE": "VN",
    "IRI": "IR",
    "INA": "ID",
    "TPE": "TW",
    "ROM": "RO",
    # names
    "America": "US",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "Russia": "RU",
    "Holland": "NL",
    "Turkey": "TR",
    "Ivory Coast": "CI",
    "Cape Verde": "CV",
    "Swaziland": "SZ",
    "Macedonia": "MK",
    "Burma": "MM",
    "East Timor": "TL",
    "Vatican": "VA",
    "Vatican City": "VA",
    "Brunei": "BN",
    "Palestine": "PS",
    "Korea": "KR",
    "Micronesia": "FM",
    "DR Congo": "CD",
    "DRC": "CD",
    "Democratic Republic of the Congo": "CD",
    "Congo-Kinshasa": "CD",
    "Congo-Brazzaville": "CG",
    "Emirates": "AE",
    "Falklands": "FK",
    "Bosnia": "BA",
    "Sao Tome": "ST",
}

#: The longest text worth comparing with the names (the longest name has 52 characters).
_LONGEST = 80


def _key(text: str) -> str:
    """`text` as names are compared: accents dropped, case folded, `&` as `and`, punctuation as spaces, no
    leading `the`: `Côte d'Ivoire` and `cote d ivoire` compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    plain = plain.replace("&", " and ")
    words = "".join(char if char.isalnum() else " " for char in plain).split()
    if words[:1] == ["the"]:
        words = words[1:]
    return " ".join(words)


@functools.cache
def _tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(alpha-2 -> ISO short name, code -> alpha-2, name key -> alpha-2)."""
    short = {alpha2: names[0] for alpha2, _, names in COUNTRIES}
    codes = {alpha3: alpha2 for alpha2, alpha3, _ in COUNTRIES}
    names: dict[str, str] = {}
    for alpha2, _, spelled in COUNTRIES:
        for name in spelled:
            names.setdefault(_key(name), alpha2)
            if ", " in name:  # "Korea, Republic of" is also written "Republic of Korea"
                first, rest = name.split(", ", 1)
                names.setdefault(_key(f"{rest} {first}"), alpha2)
    for alias, alpha2 in ALIASES.items():
        if alias.isupper() and len(alias) <= 3:
            codes[alias] = alpha2
        else:
            names.setdefault(_key(alias), alpha2)
    return short, codes, names


def suggest(text: str) -> tuple[str, str] | None:
    """The alpha-2 code (and ISO's short name) that `text` most likely means, or None: an alpha-3 code, a code
    people use (`UK`, `GER`), an English name in any case, or a near miss of one (`Germny`)."""
    if not text or len(text) > _LONGEST:
        return None
    short, codes, names = _tables()
    stripped = text.strip()
    code = codes.get(stripped.upper()) if len(stripped) <= 3 else None
    key = _key(stripped)
    alpha2 = code or names.get(key)
    if alpha2 is None and len(key) > 3:
        import difflib  # only for a near miss

        close = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
        alpha2 = names[close[0]] if close else None
    return (alpha2, short[alpha2]) if alpha2 else None


def not_a_code(written: object) -> str:
    """The one message for a `country` that is no ISO 3166-1 alpha-2 code, whichever check found it (the
    schema's pattern for `germany`, the list of codes for `UK`), with the code it most likely means."""
    from reconciler.errors import brief

    message = f"country {brief(written)} is not an ISO 3166-1 alpha-2 code"
    country = suggest(written) if isinstance(written, str) else None
    if isinstance(written, str) and "${" in written:
        return message + "; ${...} is read only in the strings of proxy: write the code itself"
    return message + (f"; did you mean {country[0]!r} ({country[1]})?" if country else "")
