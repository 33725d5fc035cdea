"""What each vendor's own contact model does to the flow, as the vendor references say.

- Perfex (perfex.md §7, §10): a customer has no e-mail of its own; the e-mail (and the
  names) live on its *primary* contact. Other contacts of the customer are not the
  company's e-mail.
- SimplBooks (simplbooks.md §7): no contact people; a client has one ``e_mail`` and one
  ``phone``.
- Simplicate (simplicate.md §5): companies are ``crm/organization``, people
  ``crm/person`` (first name, family name).
- Moneybird (moneybird.md §5, §7): contacts are archived (``PATCH .../archive``) and
  archived ones are still listed with ``include_archived``; the API cannot un-archive.
  Perfex and SimplBooks delete for good (no tombstones); Perfex also has an inactive
  customer (``active = 0``), Simplicate an inactive relation (``is_active = false``).
"""

from __future__ import annotations

from typing import Any

from syncd.sandbox.base import VENDORS, VendorName
from syncd.store import tables as t
from tests.integration.helpers import (
    SyncWorld,
    assert_agree,
    assert_union,
    attribute,
    find_held,
    held_contacts,
    human_edit,
    open_sync,
    perfex_primary_contacts,
    same_phone,
    seed_contact,
    seeds_of,
)

GROENHORST = seed_contact(
    "groenhorst",
    "Groenhorst Software B.V.",
    email="info@groenhorst.nl",
    phone="+31 20 612 3456",
    vat_number="NL853746333B01",
    coc_number="61234567",
    address="Keizersgracht 12",
    postal_code="1015 CJ",
    city="Amsterdam",
)
SANNE = seed_contact(
    "sanne",
    "Sanne Visser",
    kind="person",
    first_name="Sanne",
    last_name="Visser",
    email="sanne.visser@example.nl",
    phone="+31 6 1234 5678",
)
KADRIORU = seed_contact(
    "kadrioru",
    "Kadrioru Energia OÜ",
    email="arve@kadrioruenergia.ee",
    phone="+372 612 3456",
    country="EE",
    vat_number="EE103871903",
    coc_number="12345678",
    address="Narva mnt 5",
    postal_code="10117",
    city="Tallinn",
)
KAAREL = seed_contact(
    "kaarel",
    "Kaarel Tamm",
    kind="person",
    first_name="Kaarel",
    last_name="Tamm",
    email="kaarel@tamm.ee",
    phone="+372 5123 4567",
    country="EE",
)


def _primary(world: SyncWorld, customer: str) -> dict[str, Any]:
    return dict(perfex_primary_contacts(world.emulator("perfex").dump())[customer])


async def test_perfex_customers_carry_the_email_and_names_on_their_primary_contact(
    sqlite_db_url: str,
) -> None:
    seeds = seeds_of(moneybird=[GROENHORST, SANNE], perfex=[KADRIORU])
    async with open_sync(("moneybird", "perfex"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()
        assert_union(world)
        perfex = world.emulator("perfex")

        # A company: its shared mailbox becomes the primary contact, filed the way Perfex
        # admins file one (first name = the mailbox, last name = the company).
        company = find_held(perfex, email="info@groenhorst.nl")
        assert company.raw["company"] == "Groenhorst Software B.V."
        primary = _primary(world, company.id)
        assert (primary["firstname"], primary["lastname"]) == ("Info", "Groenhorst Software B.V.")
        assert primary["email"] == "info@groenhorst.nl"
        # A person: the customer is named after its primary contact, who is that person.
        person = find_held(perfex, email="sanne.visser@example.nl")
        assert person.raw["company"] == "Sanne Visser"
        primary = _primary(world, person.id)
        assert (primary["firstname"], primary["lastname"]) == ("Sanne", "Visser")
        # And the other way: Moneybird gets the Perfex customer's primary e-mail.
        kadrioru = find_held(world.emulator("moneybird"), email="arve@kadrioruenergia.ee")
        assert kadrioru.raw["company_name"] == "Kadrioru Energia OÜ"

        # Another contact of the customer is not the company's e-mail ...
        writes = world.writes()
        perfex.create(
            "contacts",
            {
                "userid": company.id,
                "firstname": "Joost",
                "lastname": "Bakker",
                "email": "joost@groenhorst.nl",
                "is_primary": "0",
            },
        )
        await world.engine.once()
        assert world.writes() == writes
        assert find_held(world.emulator("moneybird"), email="info@groenhorst.nl")
        # ... until it is made the primary one.
        new_primary = next(
            c for c in perfex.dump()["contacts"] if c["email"] == "joost@groenhorst.nl"
        )
        perfex.mutate("contacts", str(new_primary["id"]), {"is_primary": "1"})
        await world.engine.once()
        moneybird = find_held(world.emulator("moneybird"), email="joost@groenhorst.nl")
        assert moneybird.raw["company_name"] == "Groenhorst Software B.V."


async def test_simplbooks_gets_one_email_and_one_phone_per_client(sqlite_db_url: str) -> None:
    seeds = seeds_of(moneybird=[GROENHORST], perfex=[KADRIORU], simplbooks=[])
    vendors: tuple[VendorName, ...] = ("moneybird", "perfex", "simplbooks")
    async with open_sync(vendors, sqlite_db_url, seeds=seeds) as world:
        moneybird, perfex = world.emulator("moneybird"), world.emulator("perfex")
        # Moneybird sends invoices to two addresses; Perfex has a second contact.
        groenhorst = find_held(moneybird, email="info@groenhorst.nl")
        moneybird.mutate(
            "contacts",
            groenhorst.id,
            {"send_invoices_to_email": "info@groenhorst.nl, facturen@groenhorst.nl"},
        )
        kadrioru = find_held(perfex, email="arve@kadrioruenergia.ee")
        perfex.create(
            "contacts",
            {
                "userid": kadrioru.id,
                "firstname": "Piret",
                "lastname": "Kask",
                "email": "piret@kadrioruenergia.ee",
                "phonenumber": "+372 5555 1234",
            },
        )

        await world.engine.once()

        assert_union(world)
        simplbooks = world.emulator("simplbooks")
        client = find_held(simplbooks, vat="NL853746333B01")
        assert client.raw["e_mail"] == "info@groenhorst.nl"
        assert same_phone(client.raw["phone"], "+31206123456")
        client = find_held(simplbooks, vat="EE103871903")
        assert client.raw["e_mail"] == "arve@kadrioruenergia.ee"
        assert same_phone(client.raw["phone"], "+3726123456", "EE")
        # Moneybird keeps its list: nothing wrote the one address back over it.
        listed = find_held(moneybird, vat="NL853746333B01").raw["send_invoices_to_email"]
        assert listed == "info@groenhorst.nl, facturen@groenhorst.nl"

        # SimplBooks' one phone edited there reaches the others.
        human_edit(simplbooks, find_held(simplbooks, vat="EE103871903"), "phone", "+372 600 0000")
        await world.engine.once()
        assert same_phone(find_held(perfex, vat="EE103871903").phone, "+3726000000", "EE")
        assert same_phone(find_held(moneybird, vat="EE103871903").phone, "+3726000000", "EE")
        # Perfex's second contact kept its own number.
        piret = next(c for c in perfex.dump()["contacts"] if c["firstname"] == "Piret")
        assert piret["phonenumber"] == "+372 5555 1234"


async def test_simplicate_keeps_companies_as_organizations_and_people_as_persons(
    sqlite_db_url: str,
) -> None:
    seeds = seeds_of(simplicate=[KADRIORU, KAAREL], moneybird=[GROENHORST, SANNE])
    async with open_sync(("simplicate", "moneybird"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()

        assert_union(world)
        state = world.emulator("simplicate").dump()
        assert sorted(o["name"] for o in state["organization"]) == [
            "Groenhorst Software B.V.",
            "Kadrioru Energia OÜ",
        ]
        people = {p["email"]: p for p in state["person"]}
        assert sorted(people) == ["kaarel@tamm.ee", "sanne.visser@example.nl"]
        sanne = people["sanne.visser@example.nl"]
        assert (sanne["first_name"], sanne["family_name"]) == ("Sanne", "Visser")
        # Moneybird: a company has a company name, a person only first and last name.
        moneybird = {h.email: h.raw for h in held_contacts(world.emulator("moneybird"))}
        assert moneybird["arve@kadrioruenergia.ee"]["company_name"] == "Kadrioru Energia OÜ"
        kaarel = moneybird["kaarel@tamm.ee"]
        assert not kaarel["company_name"]
        assert (kaarel["firstname"], kaarel["lastname"]) == ("Kaarel", "Tamm")


async def test_simplicate_person_and_organization_edits_reach_the_others(
    sqlite_db_url: str,
) -> None:
    seeds = seeds_of(simplicate=[KAAREL, KADRIORU], moneybird=[SANNE, GROENHORST], perfex=[])
    vendors: tuple[VendorName, ...] = ("simplicate", "moneybird", "perfex")
    async with open_sync(vendors, sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()
        simplicate = world.emulator("simplicate")

        kaarel = find_held(simplicate, email="kaarel@tamm.ee")
        simplicate.mutate("person", kaarel.id, {"first_name": "Karl", "phone": "+372 5999 0000"})
        simplicate.archive("person", find_held(simplicate, email="sanne.visser@example.nl").id)
        groenhorst = find_held(simplicate, email="info@groenhorst.nl")
        simplicate.mutate("organization", groenhorst.id, {"name": "Groenhorst Groep B.V."})
        await world.engine.once()

        assert_union(world)
        assert_agree(world)
        for vendor in ("moneybird", "perfex"):
            emulator = world.emulator(vendor)
            assert find_held(emulator, email="kaarel@tamm.ee").name == "Karl Tamm"
            assert find_held(emulator, email="sanne.visser@example.nl").archived
            assert find_held(emulator, email="info@groenhorst.nl").name == "Groenhorst Groep B.V."
        moneybird = find_held(world.emulator("moneybird"), email="kaarel@tamm.ee").raw
        assert (moneybird["firstname"], moneybird["lastname"]) == ("Karl", "Tamm")
        perfex = world.emulator("perfex")
        karl = _primary(world, find_held(perfex, email="kaarel@tamm.ee").id)
        assert (karl["firstname"], karl["lastname"]) == ("Karl", "Tamm")
        # A shared mailbox is filed under the company's name: it follows the rename.
        mailbox = _primary(world, find_held(perfex, email="info@groenhorst.nl").id)
        assert mailbox["lastname"] == "Groenhorst Groep B.V."


async def _four_vendors_in_step(world: SyncWorld) -> list[str]:
    totals = await world.engine.once()
    assert all(st.errors == [] for st in totals.values())
    assert_union(world)
    return sorted({h.email.lower() for h in held_contacts(world.emulator("simplbooks")) if h.email})


def _state(world: SyncWorld, email: str) -> dict[VendorName, str]:
    """Per vendor: "active", "archived" or "gone" for the contact with ``email``."""
    tokens = world.world_tokens()
    (key,) = [k for k, found in tokens.items() if ("email", email.lower()) in found]
    states: dict[VendorName, str] = {}
    for vendor in world.vendors:
        by_key, _ = attribute(held_contacts(world.emulator(vendor)), tokens)
        found = by_key[key]
        assert len(found) <= 1
        states[vendor] = "gone" if not found else "archived" if found[0].archived else "active"
    return states


async def test_archive_policy_archives_where_it_can_and_deletes_nothing(
    sqlite_db_url: str,
) -> None:
    async with open_sync(
        VENDORS, sqlite_db_url, contacts=8, overlap=0.5, delete="archive"
    ) as world:
        archived_in_moneybird, deleted_in_simplbooks = (await _four_vendors_in_step(world))[:2]

        # A Moneybird user archives a contact: the vendors with an archive follow;
        # SimplBooks has none and keeps it.
        moneybird = world.emulator("moneybird")
        moneybird.archive("contacts", find_held(moneybird, email=archived_in_moneybird).id)
        await world.engine.once()
        assert _state(world, archived_in_moneybird) == {
            "simplicate": "archived",
            "moneybird": "archived",
            "perfex": "archived",
            "simplbooks": "active",
        }

        # A SimplBooks user deletes a client: the next id sweep sees it gone, and under
        # delete = "archive" everybody else archives it; nothing is deleted.
        simplbooks = world.emulator("simplbooks")
        simplbooks.delete("clients", find_held(simplbooks, email=deleted_in_simplbooks).id)
        await world.engine.reconcile("simplbooks")
        await world.engine.once(reconcile=False)
        assert _state(world, deleted_in_simplbooks) == {
            "simplicate": "archived",
            "moneybird": "archived",
            "perfex": "archived",
            "simplbooks": "gone",
        }

        # Re-activating in Perfex reaches Simplicate; Moneybird's API cannot un-archive,
        # which is refused visibly (dead letter with the reason), not retried forever.
        perfex = world.emulator("perfex")
        perfex.mutate(
            "customers", find_held(perfex, email=archived_in_moneybird).id, {"active": "1"}
        )
        await world.engine.once()
        states = _state(world, archived_in_moneybird)
        assert (states["simplicate"], states["perfex"], states["moneybird"]) == (
            "active",
            "active",
            "archived",
        )
        dead = await world.rows(t.Outbox, t.Outbox.state == "dead")
        assert len(dead) == 1 and "un-archive" in (dead[0].last_error or "")


async def test_propagate_policy_deletes_where_the_vendor_deletes(sqlite_db_url: str) -> None:
    async with open_sync(
        VENDORS, sqlite_db_url, contacts=8, overlap=0.5, delete="propagate"
    ) as world:
        deleted_in_perfex = (await _four_vendors_in_step(world))[0]

        # A Perfex user deletes a customer (a hard delete: it just vanishes from lists).
        perfex = world.emulator("perfex")
        perfex.delete("customers", find_held(perfex, email=deleted_in_perfex).id)
        await world.engine.reconcile("perfex")
        await world.engine.once(reconcile=False)

        # SimplBooks deletes it too; Moneybird and Simplicate remove contacts by archiving.
        assert _state(world, deleted_in_perfex) == {
            "simplicate": "archived",
            "moneybird": "archived",
            "perfex": "gone",
            "simplbooks": "gone",
        }
        writes = world.writes()
        await world.engine.once()
        assert world.writes() == writes
