"""Perfex lookup tables: countries (stock ids), currencies, taxes and payment modes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# The stock Perfex `tblcountries` rows (country_id, iso2, iso3, short_name). Customers refer to
# a country by this numeric id ("0" = none), so the ids must match a real install.
_COUNTRY_ROWS = """\
1|AF|AFG|Afghanistan
2|AX|ALA|Aland Islands
3|AL|ALB|Albania
4|DZ|DZA|Algeria
5|AS|ASM|American Samoa
6|AD|AND|Andorra
7|AO|AGO|Angola
8|AI|AIA|Anguilla
9|AQ|ATA|Antarctica
10|AG|ATG|Antigua and Barbuda
11|AR|ARG|Argentina
12|AM|ARM|Armenia
13|AW|ABW|Aruba
14|AU|AUS|Australia
15|AT|AUT|Austria
16|AZ|AZE|Azerbaijan
17|BS|BHS|Bahamas
18|BH|BHR|Bahrain
19|BD|BGD|Bangladesh
20|BB|BRB|Barbados
21|BY|BLR|Belarus
22|BE|BEL|Belgium
23|BZ|BLZ|Belize
24|BJ|BEN|Benin
25|BM|BMU|Bermuda
26|BT|BTN|Bhutan
27|BO|BOL|Bolivia
28|BQ|BES|Bonaire, Sint Eustatius and Saba
29|BA|BIH|Bosnia and Herzegovina
30|BW|BWA|Botswana
31|BV|BVT|Bouvet Island
32|BR|BRA|Brazil
33|IO|IOT|British Indian Ocean Territory
34|BN|BRN|Brunei
35|BG|BGR|Bulgaria
36|BF|BFA|Burkina Faso
37|BI|BDI|Burundi
38|KH|KHM|Cambodia
39|CM|CMR|Cameroon
40|CA|CAN|Canada
41|CV|CPV|Cape Verde
42|KY|CYM|Cayman Islands
43|CF|CAF|Central African Republic
44|TD|TCD|Chad
45|CL|CHL|Chile
46|CN|CHN|China
47|CX|CXR|Christmas Island
48|CC|CCK|Cocos (Keeling) Islands
49|CO|COL|Colombia
50|KM|COM|Comoros
51|CG|COG|Congo
52|CK|COK|Cook Islands
53|CR|CRI|Costa Rica
54|CI|CIV|Cote d'ivoire (Ivory Coast)
55|HR|HRV|Croatia
56|CU|CUB|Cuba
57|CW|CUW|Curacao
58|CY|CYP|Cyprus
59|CZ|CZE|Czech Republic
60|CD|COD|Democratic Republic of the Congo
61|DK|DNK|Denmark
62|DJ|DJI|Djibouti
63|DM|DMA|Dominica
64|DO|DOM|Dominican Republic
65|EC|ECU|Ecuador
66|EG|EGY|Egypt
67|SV|SLV|El Salvador
68|GQ|GNQ|Equatorial Guinea
69|ER|ERI|Eritrea
70|EE|EST|Estonia
71|ET|ETH|Ethiopia
72|FK|FLK|Falkland Islands (Malvinas)
73|FO|FRO|Faroe Islands
74|FJ|FJI|Fiji
75|FI|FIN|Finland
76|FR|FRA|France
77|GF|GUF|French Guiana
78|PF|PYF|French Polynesia
79|TF|ATF|French Southern Territories
80|GA|GAB|Gabon
81|GM|GMB|Gambia
82|GE|GEO|Georgia
83|DE|DEU|Germany
84|GH|GHA|Ghana
85|GI|GIB|Gibraltar
86|GR|GRC|Greece
87|GL|GRL|Greenland
88|GD|GRD|Grenada
89|GP|GLP|Guadaloupe
90|GU|GUM|Guam
91|GT|GTM|Guatemala
92|GG|GGY|Guernsey
93|GN|GIN|Guinea
94|GW|GNB|Guinea-Bissau
95|GY|GUY|Guyana
96|HT|HTI|Haiti
97|HM|HMD|Heard Island and McDonald Islands
98|HN|HND|Honduras
99|HK|HKG|Hong Kong
100|HU|HUN|Hungary
101|IS|ISL|Iceland
102|IN|IND|India
103|ID|IDN|Indonesia
104|IR|IRN|Iran
105|IQ|IRQ|Iraq
106|IE|IRL|Ireland
107|IM|IMN|Isle of Man
108|IL|ISR|Israel
109|IT|ITA|Italy
110|JM|JAM|Jamaica
111|JP|JPN|Japan
112|JE|JEY|Jersey
113|JO|JOR|Jordan
114|KZ|KAZ|Kazakhstan
115|KE|KEN|Kenya
116|KI|KIR|Kiribati
117|XK|---|Kosovo
118|KW|KWT|Kuwait
119|KG|KGZ|Kyrgyzstan
120|LA|LAO|Laos
121|LV|LVA|Latvia
122|LB|LBN|Lebanon
123|LS|LSO|Lesotho
124|LR|LBR|Liberia
125|LY|LBY|Libya
126|LI|LIE|Liechtenstein
127|LT|LTU|Lithuania
128|LU|LUX|Luxembourg
129|MO|MAC|Macao
130|MK|MKD|Macedonia
131|MG|MDG|Madagascar
132|MW|MWI|Malawi
133|MY|MYS|Malaysia
134|MV|MDV|Maldives
135|ML|MLI|Mali
136|MT|MLT|Malta
137|MH|MHL|Marshall Islands
138|MQ|MTQ|Martinique
139|MR|MRT|Mauritania
140|MU|MUS|Mauritius
141|YT|MYT|Mayotte
142|MX|MEX|Mexico
143|FM|FSM|Micronesia
144|MD|MDA|Moldava
145|MC|MCO|Monaco
146|MN|MNG|Mongolia
147|ME|MNE|Montenegro
148|MS|MSR|Montserrat
149|MA|MAR|Morocco
150|MZ|MOZ|Mozambique
151|MM|MMR|Myanmar (Burma)
152|NA|NAM|Namibia
153|NR|NRU|Nauru
154|NP|NPL|Nepal
155|NL|NLD|Netherlands
156|NC|NCL|New Caledonia
157|NZ|NZL|New Zealand
158|NI|NIC|Nicaragua
159|NE|NER|Niger
160|NG|NGA|Nigeria
161|NU|NIU|Niue
162|NF|NFK|Norfolk Island
163|KP|PRK|North Korea
164|MP|MNP|Northern Mariana Islands
165|NO|NOR|Norway
166|OM|OMN|Oman
167|PK|PAK|Pakistan
168|PW|PLW|Palau
169|PS|PSE|Palestine
170|PA|PAN|Panama
171|PG|PNG|Papua New Guinea
172|PY|PRY|Paraguay
173|PE|PER|Peru
174|PH|PHL|Phillipines
175|PN|PCN|Pitcairn
176|PL|POL|Poland
177|PT|PRT|Portugal
178|PR|PRI|Puerto Rico
179|QA|QAT|Qatar
180|RE|REU|Reunion
181|RO|ROU|Romania
182|RU|RUS|Russia
183|RW|RWA|Rwanda
184|BL|BLM|Saint Barthelemy
185|SH|SHN|Saint Helena
186|KN|KNA|Saint Kitts and Nevis
187|LC|LCA|Saint Lucia
188|MF|MAF|Saint Martin
189|PM|SPM|Saint Pierre and Miquelon
190|VC|VCT|Saint Vincent and the Grenadines
191|WS|WSM|Samoa
192|SM|SMR|San Marino
193|ST|STP|Sao Tome and Principe
194|SA|SAU|Saudi Arabia
195|SN|SEN|Senegal
196|RS|SRB|Serbia
197|SC|SYC|Seychelles
198|SL|SLE|Sierra Leone
199|SG|SGP|Singapore
200|SX|SXM|Sint Maarten
201|SK|SVK|Slovakia
202|SI|SVN|Slovenia
203|SB|SLB|Solomon Islands
204|SO|SOM|Somalia
205|ZA|ZAF|South Africa
206|GS|SGS|South Georgia and the South Sandwich Islands
207|KR|KOR|South Korea
208|SS|SSD|South Sudan
209|ES|ESP|Spain
210|LK|LKA|Sri Lanka
211|SD|SDN|Sudan
212|SR|SUR|Suriname
213|SJ|SJM|Svalbard and Jan Mayen
214|SZ|SWZ|Swaziland
215|SE|SWE|Sweden
216|CH|CHE|Switzerland
217|SY|SYR|Syria
218|TW|TWN|Taiwan
219|TJ|TJK|Tajikistan
220|TZ|TZA|Tanzania
221|TH|THA|Thailand
222|TL|TLS|Timor-Leste (East Timor)
223|TG|TGO|Togo
224|TK|TKL|Tokelau
225|TO|TON|Tonga
226|TT|TTO|Trinidad and Tobago
227|TN|TUN|Tunisia
228|TR|TUR|Turkey
229|TM|TKM|Turkmenistan
230|TC|TCA|Turks and Caicos Islands
231|TV|TUV|Tuvalu
232|UG|UGA|Uganda
233|UA|UKR|Ukraine
234|AE|ARE|United Arab Emirates
235|GB|GBR|United Kingdom
236|US|USA|United States
237|UM|UMI|United States Minor Outlying Islands
238|UY|URY|Uruguay
239|UZ|UZB|Uzbekistan
240|VU|VUT|Vanuatu
241|VA|VAT|Vatican City
242|VE|VEN|Venezuela
243|VN|VNM|Vietnam
244|VG|VGB|Virgin Islands, British
245|VI|VIR|Virgin Islands, US
246|WF|WLF|Wallis and Futuna
247|EH|ESH|Western Sahara
248|YE|YEM|Yemen
249|ZM|ZMB|Zambia
250|ZW|ZWE|Zimbabwe
"""


def _parse_countries() -> tuple[dict[str, Any], ...]:
    rows = []
    for line in _COUNTRY_ROWS.splitlines():
        country_id, iso2, iso3, short_name = line.split("|")
        rows.append(
            {"country_id": country_id, "iso2": iso2, "short_name": short_name, "iso3": iso3}
        )
    return tuple(rows)


COUNTRIES: tuple[dict[str, Any], ...] = _parse_countries()
COUNTRY_ID_BY_ISO2: dict[str, int] = {row["iso2"]: int(row["country_id"]) for row in COUNTRIES}
COUNTRY_IDS: frozenset[int] = frozenset(COUNTRY_ID_BY_ISO2.values())

# A fresh install has USD (default) and EUR; the seeded company invoices in EUR, so invoices
# carry currency "2" explicitly and customers keep default_currency "0" (= system default).
DEFAULT_CURRENCIES: tuple[dict[str, Any], ...] = (
    {
        "id": "1",
        "symbol": "$",
        "name": "USD",
        "decimal_separator": ".",
        "thousand_separator": ",",
        "placement": "before",
        "isdefault": "1",
    },
    {
        "id": "2",
        "symbol": "€",
        "name": "EUR",
        "decimal_separator": ",",
        "thousand_separator": ".",
        "placement": "before",
        "isdefault": "0",
    },
)

# Taxes defined in Setup -> Finance -> Taxes. A 0 % line is stored without any tax (the
# "No Tax" choice), as a user of a Dutch or Estonian install typically does.
DEFAULT_TAXES: tuple[tuple[str, Decimal], ...] = (
    ("VAT", Decimal("21.00")),
    ("VAT", Decimal("9.00")),
    ("VAT", Decimal("22.00")),
)

DEFAULT_PAYMENT_MODES: tuple[dict[str, Any], ...] = (
    {
        "id": "1",
        "name": "Bank",
        "description": None,
        "show_on_pdf": "0",
        "invoices_only": "0",
        "expenses_only": "0",
        "selected_by_default": "1",
        "active": "1",
    },
)
