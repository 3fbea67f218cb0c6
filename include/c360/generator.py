"""Source-system data generator: seeded, deterministic, realistic shapes, documented defects.

Fills the two source databases (``redshift``: customer, product, brand; ``oltp``: orders, order line items,
transactions) and writes Google Analytics export files (nested JSON, one file per hour) plus the visitor →
customer map into the lake's landing zone.

Shapes: repeat buyers (Zipf-like customer popularity), long-tail spend (log-normal prices, 1–5 items per
order), weekly seasonality (+35 % on weekends), an evening peak within the day, a brand / category /
subcategory hierarchy, and web sessions that view, favourite, add to cart, abandon and buy; half of the
abandoned carts bring their visitor back 5–30 minutes later (a reminder e-mail), to buy or abandon again.

Defects (``--no-defects`` turns all off). Rates are per row of the table named:

=====================  =========  ==================================================================
defect                 rate       how it looks
=====================  =========  ==================================================================
missing email          2 %        customer.email_address NULL
out-of-range age       1 %        customer.age in {-3, 0, 7, 130, 212}
inconsistent gender    1.5 %      customer.gender in {'male', 'FEMALE', 'f', '1', 'X'}
duplicate id           0.5 %      a second, older customer row with the same customer_id
missing description    2 %        product.product_description NULL
unknown order status   0.5 %      orders.order_status 'UNKNOWN' / 'shiped'
unknown payment        0.5 %      orders.payment_method 'cash??' / ''
late-arriving rows     0.5 %      orders (with items, transactions) held in oltp ``late.*`` until
                                  ``deliver-late`` moves them in, after their interval ran
malformed JSON line    0.2 %      a GA export line cut short
=====================  =========  ==================================================================

The same seed and scale produce the same data (tested): every random draw comes from one
``numpy.random.Generator`` in a fixed order, and timestamps are anchored at a fixed end date.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from c360 import settings

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

DEFECT_RATES = {
    "missing_email": 0.02,
    "age_out_of_range": 0.01,
    "inconsistent_gender": 0.015,
    "duplicate_customer_id": 0.005,
    "same_person_twice": 0.01,
    "missing_description": 0.02,
    "unknown_order_status": 0.005,
    "unknown_payment_method": 0.005,
    "late_arriving": 0.005,
    "malformed_json": 0.002,
}

FIRST = np.array("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
                 "Susan Joseph Jessica Thomas Sarah Charles Karen Priya Wei Ana Luis Fatima Omar Yuki Ivan".split())
LAST = np.array("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
                "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Patel Chen Kim Nguyen".split())
STATES = [  # (state, city, zip prefix, weight)
    ("California", "Los Angeles", "900", 12), ("California", "San Francisco", "941", 6),
    ("Texas", "Houston", "770", 8), ("Texas", "Austin", "787", 4), ("New York", "New York", "100", 10),
    ("Florida", "Miami", "331", 7), ("Illinois", "Chicago", "606", 6), ("Washington", "Seattle", "981", 4),
    ("Georgia", "Atlanta", "303", 4), ("Massachusetts", "Boston", "021", 4), ("Colorado", "Denver", "802", 3),
    ("Arizona", "Phoenix", "850", 3), ("Oregon", "Portland", "972", 2), ("Ohio", "Columbus", "432", 3),
]
EDUCATION = np.array(["High School", "Bachelor", "Master", "Doctorate", "Associate"])
MARITAL = np.array(["Single", "Married", "Divorced", "Widowed"])
OCCUPATION = np.array(["Engineer", "Teacher", "Nurse", "Sales", "Manager", "Student", "Retired", "Designer",
                       "Accountant", "Self-employed"])
HOBBIES = np.array(["Reading", "Running", "Cooking", "Gaming", "Travel", "Gardening", "Photography", "Yoga",
                    "Cycling", "Music"])
CATEGORIES = {
    "Apparel": ["Tops", "Dresses", "Jeans", "Outerwear"],
    "Footwear": ["Sneakers", "Boots", "Sandals"],
    "Home": ["Kitchen", "Bedding", "Decor"],
    "Electronics": ["Audio", "Wearables", "Accessories"],
    "Baby": ["Nursery", "Feeding", "Maternity"],
    "Beauty": ["Skincare", "Fragrance"],
}
BRAND_TYPES = np.array(["Private Label", "National", "Premium", "Designer"])
COLOURS = np.array(["Black", "White", "Red", "Blue", "Green", "Grey", "Beige"])
SIZES = np.array(["XS", "S", "M", "L", "XL", "One Size"])
STATUSES = np.array(["delivered", "shipped", "processing", "cancelled", "returned"])
STATUS_P = np.array([0.72, 0.10, 0.08, 0.05, 0.05])
PAYMENTS = np.array(["credit_card", "debit_card", "paypal", "gift_card", "apple_pay"])
PAYMENT_P = np.array([0.45, 0.25, 0.18, 0.04, 0.08])
CHANNELS = [("google", "organic", "Organic Search"), ("google", "cpc", "Paid Search"),
            ("(direct)", "(none)", "Direct"), ("newsletter", "email", "Email"),
            ("facebook", "social", "Social"), ("partner.example", "referral", "Referral")]
REMINDER_CHANNEL = ("cart_reminder", "email", "Email")
# Share of abandoned carts whose visitor comes back 5–30 minutes later (a cart reminder e-mail), views and adds
# the same items again, and buys like any cart (40 %) or abandons it again (and may come back again): the
# repeat abandoners of the "Frequent Cart Abandoner" audience, within even one hour of exports.
RETURN_AFTER_ABANDON = 0.5


@dataclass(frozen=True)
class Scale:
    customers: int = 20_000
    days: int = 30
    orders_per_day: int = 2_000
    sessions_per_hour: int = 200
    ga_days: int = 1
    end: str = settings.DEMO_DATE  # last generated day (inclusive)
    seed: int = 42
    defects: bool = True

    @property
    def end_ts(self) -> datetime:
        return datetime.fromisoformat(self.end) + timedelta(days=1)

    @property
    def start_ts(self) -> datetime:
        return self.end_ts - timedelta(days=self.days)


@dataclass
class Generated:
    tables: dict[str, pa.Table] = field(default_factory=dict)
    late: dict[str, pa.Table] = field(default_factory=dict)
    ga_files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    visitor_map: bytes = b""
    defects: dict[str, int] = field(default_factory=dict)


def _ts(base: datetime, seconds: np.ndarray) -> np.ndarray:
    return np.datetime64(base, "us") + (seconds * 1_000_000).astype("int64").astype("timedelta64[us]")


def _ids(prefix: str, n: int, start: int = 1) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.arange(start, start + n).astype(str), 8))


def _ids_arrow(prefix: str, n: int):
    """:func:`_ids` as an Arrow string array (about 13 bytes a row instead of 36 and more)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), 8, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _pick(rng: np.random.Generator, mask_rate: float, n: int, enabled: bool) -> np.ndarray:
    if not enabled or mask_rate <= 0:
        return np.zeros(n, dtype=bool)
    return rng.random(n) < mask_rate


def _progress(label: str, done: int, total: int) -> None:
    if total >= 200_000:  # a bar for the long loops (c360.progress draws it inside `make demo`'s session)
        from c360 import progress

        progress.advance(label, done, total)


def generate(scale: Scale) -> Generated:
    """The source systems' data for ``scale``: every table, the held-back late rows, the GA export files and
    the visitor map.

    Each part below draws from the one random generator in turn, so the order of the calls (and of the draws
    within each) is part of the data: the same seed gives the same data only while that order holds.
    """
    rng = np.random.default_rng(scale.seed)
    out = Generated()
    brand_category = _brands(rng, scale, out)
    _products(rng, scale, out, brand_category)
    _customers(rng, scale, out)
    _orders_items_and_transactions(rng, scale, out)
    _web_analytics(rng, scale, out)
    return out


def _brands(rng: np.random.Generator, scale: Scale, out: Generated) -> np.ndarray:
    """``brand``; returns each brand's category (an index into CATEGORIES), which its products are of."""
    import pyarrow as pa

    n_brands = int(min(400, max(24, scale.customers // 1_000)))
    cats = list(CATEGORIES)
    brand_cat = rng.integers(0, len(cats), n_brands)
    out.tables["brand"] = pa.table({
        "brand_id": _ids("B", n_brands),
        "brand_name": np.char.add("Brand ", np.arange(1, n_brands + 1).astype(str)),
        "parent_company": np.char.add("Holding ", (np.arange(n_brands) % 12 + 1).astype(str)),
        "description": [f"{cats[c]} brand" for c in brand_cat],
        "brand_type": BRAND_TYPES[rng.integers(0, len(BRAND_TYPES), n_brands)],
        "website": np.char.add(np.char.add("https://brand", np.arange(1, n_brands + 1).astype(str)), ".example"),
        "founded_year": (1950 + rng.integers(0, 70, n_brands)).astype(str),
        "headquarters": [STATES[i % len(STATES)][1] for i in range(n_brands)],
        "updated_at": _ts(scale.end_ts - timedelta(days=400), rng.integers(0, 365 * 86_400, n_brands)),
    })
    return brand_cat


def _products(rng: np.random.Generator, scale: Scale, out: Generated, brand_cat: np.ndarray) -> None:
    """``product``: a product is of its brand's category; list prices are long-tailed, some on sale."""
    import pyarrow as pa

    n_products = int(min(20_000, max(300, scale.customers // 50)))
    cats = list(CATEGORIES)
    product_brand = rng.integers(0, len(brand_cat), n_products)
    p_cat = brand_cat[product_brand]
    p_sub = np.array([CATEGORIES[cats[c]][rng.integers(0, len(CATEGORIES[cats[c]]))] for c in p_cat])
    list_price = np.round(np.exp(rng.normal(3.4, 0.8, n_products)) + 2, 2)  # long tail, median ~$32
    sale_price = np.round(list_price * rng.choice([1.0, 0.9, 0.8, 0.7], n_products, p=[0.6, 0.2, 0.15, 0.05]), 2)
    descr = np.char.add("A ", p_sub).astype(object)
    descr[_pick(rng, DEFECT_RATES["missing_description"], n_products, scale.defects)] = None
    brand_ids = out.tables["brand"].column("brand_id").to_numpy(zero_copy_only=False)
    end = scale.end_ts
    out.tables["product"] = pa.table({
        "sku_id": _ids("SKU", n_products),
        "product_id": _ids("P", n_products),
        "product_name": np.char.add(np.char.add(p_sub, " "), np.arange(1, n_products + 1).astype(str)),
        "product_description": pa.array(descr, type=pa.string()),
        "product_category": np.array(cats)[p_cat],
        "product_subcategory": p_sub,
        "brand_id": brand_ids[product_brand],
        "product_colour": COLOURS[rng.integers(0, len(COLOURS), n_products)],
        "product_size": SIZES[rng.integers(0, len(SIZES), n_products)],
        "list_price": list_price,
        "sale_price": sale_price,
        "launched_ts": _ts(end - timedelta(days=1500), rng.integers(0, 1400 * 86_400, n_products)),
        "updated_at": _ts(end - timedelta(days=120), rng.integers(0, 119 * 86_400, n_products)),
    })


def _customers(rng: np.random.Generator, scale: Scale, out: Generated) -> None:
    """``customer``: the ``scale.customers`` originals (missing e-mails, impossible ages and inconsistent
    genders among them), then the same people registered again and stale copies of some ids."""
    import pyarrow as pa

    n, d, end = scale.customers, scale.defects, scale.end_ts
    _progress("customers", 0, n)
    first, last = FIRST[rng.integers(0, len(FIRST), n)], LAST[rng.integers(0, len(LAST), n)]
    gender = rng.choice(np.array(["M", "F", "O", "U"]), n, p=[0.48, 0.48, 0.02, 0.02]).astype(object)
    weights = np.array([s[3] for s in STATES], dtype=float)
    loc = rng.choice(len(STATES), n, p=weights / weights.sum())
    dob_days = rng.integers(18 * 365 + 5, 85 * 365, n)
    dob = np.datetime64(end, "D") - dob_days.astype("timedelta64[D]")
    age = ((np.datetime64(end, "D") - dob).astype(int) // 365.25).astype(int)
    reg = _ts(end - timedelta(days=3 * 365), rng.integers(0, 3 * 365 * 86_400, n))
    # 40 % of customers changed within the generated history; the rest were last touched at registration.
    changed = rng.random(n) < 0.4
    updated = reg.copy()
    updated[changed] = _ts(scale.start_ts, rng.integers(0, scale.days * 86_400, int(changed.sum())))
    updated = np.maximum(updated, reg)
    email = np.char.add(np.char.add(np.char.add(np.char.lower(first), "."), np.char.lower(last)),
                        np.char.add(np.arange(n).astype(str), "@mail.example")).astype(object)
    phone = np.char.add("+1-555-", np.char.zfill(rng.integers(0, 10_000_000, n).astype(str), 7)).astype(object)
    age = age.astype(object)
    defect_email = _pick(rng, DEFECT_RATES["missing_email"], n, d)
    defect_age = _pick(rng, DEFECT_RATES["age_out_of_range"], n, d)
    defect_gender = _pick(rng, DEFECT_RATES["inconsistent_gender"], n, d)
    email[defect_email] = None
    age[defect_age] = rng.choice([-3, 0, 7, 130, 212], int(defect_age.sum()))
    gender[defect_gender] = rng.choice(["male", "FEMALE", "f", "1", "X"], int(defect_gender.sum()))
    out.defects.update(missing_email=int(defect_email.sum()), age_out_of_range=int(defect_age.sum()),
                       inconsistent_gender=int(defect_gender.sum()))
    income = (np.round(np.exp(rng.normal(10.9, 0.5, n)), -3)).astype(int).astype(str)
    customer = pa.table({
        "customer_id": _ids("C", n),
        "first_name": first,
        "last_name": last,
        "gender": pa.array(gender, type=pa.string()),
        "phone_number": pa.array(phone, type=pa.string()),
        "email_address": pa.array(email, type=pa.string()),
        "date_of_birth": dob.astype("datetime64[us]"),
        "age": pa.array(age, type=pa.int32()),
        "education_level": EDUCATION[rng.integers(0, len(EDUCATION), n)],
        "marital_status": MARITAL[rng.choice(len(MARITAL), n, p=[0.42, 0.45, 0.1, 0.03])],
        "no_of_children": rng.choice(5, n, p=[0.45, 0.2, 0.22, 0.09, 0.04]).astype("int32"),
        "registration_date": reg,
        "occupation": OCCUPATION[rng.integers(0, len(OCCUPATION), n)],
        "hobbies": HOBBIES[rng.integers(0, len(HOBBIES), n)],
        "annual_income": income,
        "degree_of_loyalty": rng.integers(1, 6, n).astype("int32"),
        "mailing_street": np.char.add(rng.integers(1, 9999, n).astype(str), " Main Street"),
        "city": np.array([s[1] for s in STATES])[loc],
        "state": np.array([s[0] for s in STATES])[loc],
        "country": np.full(n, "United States"),
        "zipcode": np.char.add(np.array([s[2] for s in STATES])[loc], rng.integers(10, 99, n).astype(str)),
        "consent_marketing": rng.random(n) < 0.62,
        "consent_analytics": rng.random(n) < 0.8,
        "consent_third_party": rng.random(n) < 0.2,
        "updated_at": updated,
    })
    again = _registered_again(rng, customer, d)
    stale = _stale_copies(rng, customer, d)
    out.defects.update(same_person_twice=again.num_rows, duplicate_customer_id=stale.num_rows)
    out.tables["customer"] = pa.concat_tables([customer, *(t for t in (again, stale) if t.num_rows)])
    _progress("customers", n, n)


def _registered_again(rng: np.random.Generator, customer: pa.Table, defects: bool) -> pa.Table:
    """The same people registered a second time (a new customer_id): the same e-mail in other case, or the
    same phone in another format. Identity resolution in the profile merges them; no defect of the table."""
    import pyarrow as pa

    has_email = customer.column("email_address").is_valid().to_numpy(zero_copy_only=False)
    twice = np.flatnonzero(_pick(rng, DEFECT_RATES["same_person_twice"], customer.num_rows, defects) & has_email)
    if not len(twice):
        return customer.slice(0, 0)
    again = customer.take(pa.array(twice))
    by_email = rng.random(len(twice)) < 0.5
    emails = np.array(again.column("email_address").to_pylist(), dtype=object)
    phones = np.array(again.column("phone_number").to_pylist(), dtype=object)
    new_email = np.where(by_email, np.char.upper(emails.astype(str)), np.char.add("alt.", emails.astype(str)))
    new_phone = np.where(by_email, np.char.add("+1-555-", rng.integers(0, 10_000_000, len(twice)).astype(str)),
                         np.char.replace(np.char.replace(phones.astype(str), "+1-", "("), "-", ") ", 1))
    again = again.set_column(0, "customer_id", pa.array(_ids("D", len(twice))))
    again = again.set_column(again.schema.get_field_index("email_address"), "email_address",
                             pa.array(new_email.astype(object), type=pa.string()))
    return again.set_column(again.schema.get_field_index("phone_number"), "phone_number",
                            pa.array(new_phone.astype(object), type=pa.string()))


def _stale_copies(rng: np.random.Generator, customer: pa.Table, defects: bool) -> pa.Table:
    """A stale second row (older version, other phone) of some ids, as a Redshift table without keys allows."""
    import pyarrow as pa

    dup = np.flatnonzero(_pick(rng, DEFECT_RATES["duplicate_customer_id"], customer.num_rows, defects))
    if not len(dup):
        return customer.slice(0, 0)
    stale = customer.take(pa.array(dup))
    stale = stale.set_column(stale.schema.get_field_index("updated_at"), "updated_at",
                             pa.array(customer.column("updated_at").to_numpy()[dup] - np.timedelta64(3, "D")))
    return stale.set_column(stale.schema.get_field_index("phone_number"), "phone_number",
                            pa.array(np.char.add("+1-555-", np.char.zfill(dup.astype(str), 7))))


# An order's status and payment method are indices into these: the vocabularies, then the defects' values.
STATUS_NAMES = [*STATUSES, "UNKNOWN", "shiped"]
PAYMENT_NAMES = [*PAYMENTS, "cash??", ""]


@dataclass(frozen=True)
class _PlacedOrders:
    """What the three order tables share, one entry per order (and per line item for ``line_*``)."""

    ids: pa.Array  # order_id
    transaction_ids: pa.Array
    secs: np.ndarray  # placed at, in seconds after scale.start_ts
    customer: np.ndarray  # index of the (original) customer
    status: np.ndarray  # index into STATUS_NAMES
    payment: np.ndarray  # index into PAYMENT_NAMES
    line_order: np.ndarray  # index of the line item's order
    line_product: np.ndarray  # index of its product
    line_qty: np.ndarray

    @property
    def n(self) -> int:
        return len(self.secs)


def _orders_items_and_transactions(rng: np.random.Generator, scale: Scale, out: Generated) -> None:
    """``orders``, ``order_line_item`` and ``transactions``; the late-arriving orders (with their items and
    transactions) go to ``out.late``. An order's total is its basket's value, so the orders are placed with
    their baskets first, then each table is made."""
    placed = _place_orders(rng, scale, out)
    orders = _orders(rng, scale, placed, out.tables["customer"], out.tables["product"])
    pending = {"orders": orders,
               "order_line_item": _order_line_items(rng, scale, placed, out.tables["product"]),
               "transactions": _transactions(rng, scale, placed, orders)}
    del orders  # only `pending` holds the tables: _hold_back_late releases one unfiltered table at a time
    _hold_back_late(rng, scale, out, placed, pending)
    _progress("orders", placed.n, placed.n)


def _place_orders(rng: np.random.Generator, scale: Scale, out: Generated) -> _PlacedOrders:
    """When (weekly seasonality, an evening peak), by whom (repeat buyers), status and payment (a few unknown
    values), and the basket (1–5 items, popular products)."""
    d, n = scale.defects, scale.customers
    day_idx = np.arange(scale.days)
    day_dates = np.datetime64(scale.start_ts, "D") + day_idx.astype("timedelta64[D]")
    weekday = (day_dates.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    per_day = rng.poisson(scale.orders_per_day * np.where(weekday >= 5, 1.35, 0.87))
    n_orders = int(per_day.sum())
    _progress("orders", 0, n_orders)
    order_day = np.repeat(day_idx, per_day)
    # evening peak: hour drawn from a mixture centred at 13:00 and 20:00
    hour = np.clip(np.where(rng.random(n_orders) < 0.6, rng.normal(20, 2.5, n_orders),
                            rng.normal(13, 3, n_orders)), 0, 23.99)
    order_secs = order_day * 86_400 + (hour * 3600).astype("int64")
    # repeat buyers: customer popularity follows a Zipf-like law over a random permutation
    popularity = 1.0 / np.arange(1, n + 1) ** 0.9
    popularity /= popularity.sum()
    who = rng.permutation(n)[rng.choice(n, n_orders, p=popularity)]
    status = rng.choice(len(STATUSES), n_orders, p=STATUS_P)
    payment = rng.choice(len(PAYMENTS), n_orders, p=PAYMENT_P)
    bad_status = _pick(rng, DEFECT_RATES["unknown_order_status"], n_orders, d)
    bad_pay = _pick(rng, DEFECT_RATES["unknown_payment_method"], n_orders, d)
    # the same draws as rng.choice(["UNKNOWN", "shiped"], k): indices past the end of the vocabulary
    status[bad_status] = len(STATUSES) + rng.choice(2, int(bad_status.sum()))
    payment[bad_pay] = len(PAYMENTS) + rng.choice(2, int(bad_pay.sum()))
    out.defects.update(unknown_order_status=int(bad_status.sum()), unknown_payment_method=int(bad_pay.sum()))

    n_items_per = rng.choice([1, 2, 3, 4, 5], n_orders, p=[0.45, 0.27, 0.15, 0.08, 0.05])
    li_order = np.repeat(np.arange(n_orders), n_items_per)
    n_products = out.tables["product"].num_rows
    prod_pop = 1.0 / np.arange(1, n_products + 1) ** 1.05
    prod_pop /= prod_pop.sum()
    li_product = rng.permutation(n_products)[rng.choice(n_products, len(li_order), p=prod_pop)]
    qty = rng.choice([1, 2, 3, 4], len(li_order), p=[0.8, 0.13, 0.05, 0.02]).astype("int32")
    # order-sized strings stay in Arrow (taken by index from small vocabularies): numpy's fixed-width unicode
    # needs 4 bytes a character, which at 20M orders and 40M lines is more memory than the machine has
    return _PlacedOrders(ids=_ids_arrow("O", n_orders), transaction_ids=_ids_arrow("T", n_orders),
                         secs=order_secs, customer=who, status=status, payment=payment,
                         line_order=li_order, line_product=li_product, line_qty=qty)


def _orders(rng: np.random.Generator, scale: Scale, placed: _PlacedOrders, customer: pa.Table,
            product: pa.Table) -> pa.Table:
    """``orders``: the basket's value less a discount, plus shipping under $50; delivered and returned orders
    have a delivery date (and were last updated then); billed and shipped to the customer's address."""
    import pyarrow as pa
    import pyarrow.compute as pc

    line_value = product.column("sale_price").to_numpy()[placed.line_product] * placed.line_qty
    subtotal = np.bincount(placed.line_order, weights=line_value, minlength=placed.n)
    discount = np.round(subtotal * rng.choice([0, 0.05, 0.1, 0.2], placed.n, p=[0.7, 0.1, 0.15, 0.05]), 2)
    shipping = np.where(subtotal >= 50, 0.0, 5.99)
    total = np.round(subtotal - discount + shipping, 2)
    delivered = np.isin(placed.status, np.flatnonzero(np.isin(STATUSES, ["delivered", "returned"])))
    delivery = np.where(delivered, placed.secs + rng.integers(2, 8, placed.n) * 86_400, -1)
    delivery_ts = np.where(delivery >= 0, _ts(scale.start_ts, np.maximum(delivery, 0)), np.datetime64("NaT"))
    order_ts = _ts(scale.start_ts, placed.secs)

    def of_customer(column: str) -> pa.Array:
        return customer.column(column).slice(0, scale.customers).combine_chunks().take(placed.customer)

    address = pc.binary_join_element_wise(of_customer("mailing_street"), of_customer("city"), ", ")
    return pa.table({
        "order_id": placed.ids,
        "customer_id": of_customer("customer_id"),
        "order_date": order_ts,
        "order_status": pa.array(STATUS_NAMES).take(placed.status),
        "order_delivery_date": pa.array(delivery_ts, mask=np.isnat(delivery_ts)),
        "discounted_amount": discount,
        "shipping_amount": shipping,
        "total_amount": total,
        "payment_method": pa.array(PAYMENT_NAMES).take(placed.payment),
        "billing_address": address,
        "shipping_address": address,
        "transaction_id": placed.transaction_ids,
        "updated_at": np.where(delivery >= 0, _ts(scale.start_ts, np.maximum(delivery, 0)), order_ts),
    })


def _order_line_items(rng: np.random.Generator, scale: Scale, placed: _PlacedOrders,
                      product: pa.Table) -> pa.Table:
    """``order_line_item``: the baskets, each line created within seconds of its order."""
    import pyarrow as pa

    n_li = len(placed.line_order)
    li_secs = placed.secs[placed.line_order] + rng.integers(0, 30, n_li)
    return pa.table({
        "order_li_id": _ids_arrow("L", n_li),
        "order_id": placed.ids.take(placed.line_order),
        "product_id": product.column("product_id").combine_chunks().take(placed.line_product),
        "qty": placed.line_qty,
        "created_at": _ts(scale.start_ts, li_secs),
    })


def _transactions(rng: np.random.Generator, scale: Scale, placed: _PlacedOrders, orders: pa.Table) -> pa.Table:
    """``transactions``: each order paid its total seconds after it was placed; a returned order is refunded
    (a second, negative transaction) nine days later, when that is within the generated history."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = orders.column("total_amount").to_numpy()
    txn_secs = placed.secs + rng.integers(1, 90, placed.n)
    processed = txn_secs + rng.exponential(20, placed.n).astype("int64") + 1
    refund_idx = np.flatnonzero(placed.status == int(np.flatnonzero(STATUSES == "returned")[0]))
    refund_secs = placed.secs[refund_idx] + 9 * 86_400
    keep_refund = refund_secs < scale.days * 86_400
    refund_idx, refund_secs = refund_idx[keep_refund], refund_secs[keep_refund]
    txn_ids, order_ids = placed.transaction_ids, placed.ids
    return pa.table({
        "transaction_id": pa.concat_arrays([txn_ids, pc.binary_join_element_wise(txn_ids.take(refund_idx), "R", "")]),
        "order_id": pa.concat_arrays([order_ids, order_ids.take(refund_idx)]),
        "amount": np.concatenate([total, -total[refund_idx]]),
        "payment_method": pa.array(PAYMENT_NAMES).take(np.concatenate([placed.payment, placed.payment[refund_idx]])),
        "transaction_ts": _ts(scale.start_ts, np.concatenate([txn_secs, refund_secs])),
        "processed_ts": _ts(scale.start_ts, np.concatenate([processed, refund_secs + 60])),
        "updated_at": _ts(scale.start_ts, np.concatenate([processed, refund_secs + 60])),
    })


def _hold_back_late(rng: np.random.Generator, scale: Scale, out: Generated, placed: _PlacedOrders,
                    pending: dict[str, pa.Table]) -> None:
    """Late arrivals: some orders, with their items and transactions, go to ``out.late`` (oltp ``late.*``)
    instead of ``out.tables``. ``pending`` is emptied as it goes, so one unfiltered table is freed at a time."""
    import pyarrow.compute as pc

    late = np.flatnonzero(_pick(rng, DEFECT_RATES["late_arriving"], placed.n, scale.defects))
    late_ids = placed.ids.take(late)
    out.defects["late_arriving"] = len(late)
    for name in list(pending):
        table = pending.pop(name)
        is_late = pc.is_in(table.column("order_id"), value_set=late_ids)
        out.late[name] = table.filter(is_late)
        out.tables[name] = table.filter(pc.invert(is_late))
        del table


def _web_analytics(rng: np.random.Generator, scale: Scale, out: Generated) -> None:
    """The GA export files (one per hour) and the visitor map (``fullVisitorId,customer_id``)."""
    product, brand = out.tables["product"], out.tables["brand"]
    customer_ids = out.tables["customer"].column("customer_id").slice(0, scale.customers).to_numpy(
        zero_copy_only=False)
    product_ids = product.column("product_id").to_numpy(zero_copy_only=False)
    n = len(customer_ids)
    # visitor map: 70 % of customers have a known web visitor id; some have two devices
    known = np.flatnonzero(rng.random(n) < 0.7)
    visitors = np.char.add("V", np.char.zfill(np.arange(len(known)).astype(str), 10))
    second = known[rng.random(len(known)) < 0.15]
    visitors2 = np.char.add("W", np.char.zfill(np.arange(len(second)).astype(str), 10))
    lines = ["fullVisitorId,customer_id"]
    lines += [f"{v},{customer_ids[c]}" for v, c in zip(visitors, known, strict=True)]
    lines += [f"{v},{customer_ids[c]}" for v, c in zip(visitors2, second, strict=True)]
    out.visitor_map = ("\n".join(lines) + "\n").encode()
    all_visitors = np.concatenate([visitors, visitors2])

    names = product.column("product_name").to_numpy(zero_copy_only=False)
    cats = product.column("product_category").to_numpy(zero_copy_only=False)
    subs = product.column("product_subcategory").to_numpy(zero_copy_only=False)
    prices = product.column("sale_price").to_numpy()
    b_of_p = product.column("brand_id").to_numpy(zero_copy_only=False)
    brand_name = dict(zip(brand.column("brand_id").to_pylist(), brand.column("brand_name").to_pylist(),
                          strict=True))
    n_products = len(product_ids)
    prod_pop = 1.0 / np.arange(1, n_products + 1) ** 1.05
    prod_pop /= prod_pop.sum()
    order_seq = 0
    malformed = 0

    def buy(hits: list, t: int, cart: list, hour_start: datetime) -> tuple[str | None, int]:
        """40 % of carts are bought (a transaction hit), the rest abandoned."""
        nonlocal order_seq
        if not cart or rng.random() >= 0.4:
            return None, t
        order_seq += 1
        t += int(rng.integers(10_000, 120_000))
        revenue = sum(b["productPrice"] * b["productQuantity"] for b in cart)
        txn = f"W{hour_start:%Y%m%d%H}{order_seq:06d}"
        hits.append({"hitNumber": len(hits) + 1, "time": t, "type": "PAGE",
                     "eCommerceAction": {"action_type": "6"}, "product": cart,
                     "transaction": {"transactionId": txn, "transactionRevenue": revenue}})
        return txn, t

    def line(vid: str, visit_start: int, hour_start: datetime, channel: tuple, hits: list, t: int,
             txn: str | None) -> str:
        nonlocal malformed
        src, medium, grouping = channel
        session = {
            "fullVisitorId": vid, "visitId": visit_start, "visitNumber": int(rng.integers(1, 20)),
            "visitStartTime": visit_start, "date": hour_start.strftime("%Y%m%d"),
            "totals": {"visits": 1, "hits": len(hits), "pageviews": sum(h_["type"] == "PAGE" for h_ in hits),
                       "timeOnSite": t // 1000, "bounces": 1 if len(hits) == 1 else None,
                       "transactions": 1 if txn else None,
                       "transactionRevenue": hits[-1]["transaction"]["transactionRevenue"] if txn else None},
            "trafficSource": {"source": src, "medium": medium, "campaign": "(not set)"},
            "channelGrouping": grouping,
            "device": {"deviceCategory": str(rng.choice(["desktop", "mobile", "tablet"], p=[0.4, 0.52, 0.08])),
                       "browser": "Chrome", "operatingSystem": "Android"},
            "geoNetwork": {"country": "United States", "region": STATES[int(rng.integers(0, len(STATES)))][0]},
            "customDimensions": [{"index": 4, "value": "US"}],
            "hits": hits,
        }
        text = json.dumps(session, separators=(",", ":"))
        if scale.defects and rng.random() < DEFECT_RATES["malformed_json"]:
            text = text[: len(text) // 2]  # cut short, as a truncated export line
            malformed += 1
        return text

    # visitors coming back to an abandoned cart: (visit start, visitor, cart), generated in the hour they fall in
    returns: list[tuple[int, str, list]] = []

    def maybe_return(vid: str, visit_start: int, t: int, cart: list) -> None:
        if rng.random() < RETURN_AFTER_ABANDON:
            returns.append((visit_start + t // 1000 + int(rng.integers(5 * 60, 30 * 60)), vid, cart))

    first_day = scale.end_ts - timedelta(days=scale.ga_days)
    for h in range(scale.ga_days * 24):
        hour_start = first_day + timedelta(hours=h)
        k = int(rng.poisson(scale.sessions_per_hour * (1.4 if 18 <= hour_start.hour <= 22 else 0.85)))
        rows = []
        anon = rng.random(k) < 0.3
        vid = np.where(anon, np.char.add("A", rng.integers(0, 10**9, k).astype(str)),
                       all_visitors[rng.integers(0, len(all_visitors), k)])
        starts = rng.integers(0, 3600, k)
        for i in range(k):
            visit_start = int((hour_start + timedelta(seconds=int(starts[i]))).timestamp())
            channel = CHANNELS[int(rng.integers(0, len(CHANNELS)))]
            hits, t = [], 0
            n_views = int(rng.integers(1, 8))
            bought = []
            for _ in range(n_views):
                p = int(rng.choice(n_products, p=prod_pop))
                t += int(rng.integers(5_000, 90_000))
                prod = {"productSKU": product_ids[p], "v2ProductName": names[p],
                        "v2ProductCategory": f"{cats[p]}/{subs[p]}", "productBrand": brand_name[b_of_p[p]],
                        "productPrice": int(round(prices[p] * 1_000_000)), "productQuantity": 1}
                hits.append({"hitNumber": len(hits) + 1, "time": t, "type": "PAGE",
                             "eCommerceAction": {"action_type": "2"}, "product": [prod]})
                r = rng.random()
                if r < 0.12:
                    t += int(rng.integers(2_000, 20_000))
                    hits.append({"hitNumber": len(hits) + 1, "time": t, "type": "EVENT",
                                 "eventInfo": {"eventCategory": "ecommerce", "eventAction": "add_to_wishlist"},
                                 "eCommerceAction": {"action_type": "0"}, "product": [prod]})
                elif r < 0.35:
                    t += int(rng.integers(2_000, 20_000))
                    q = int(rng.choice([1, 1, 1, 2]))
                    hits.append({"hitNumber": len(hits) + 1, "time": t, "type": "EVENT",
                                 "eventInfo": {"eventCategory": "ecommerce", "eventAction": "add_to_cart"},
                                 "eCommerceAction": {"action_type": "3"},
                                 "product": [{**prod, "productQuantity": q}]})
                    bought.append({**prod, "productQuantity": q})
            txn, t = buy(hits, t, bought, hour_start)
            rows.append(line(str(vid[i]), visit_start, hour_start, channel, hits, t, txn))
            if bought and not txn:
                maybe_return(str(vid[i]), visit_start, t, bought)
        # the returns that fall in this hour (a return may abandon again and come back within it)
        hour_end = int((hour_start + timedelta(hours=1)).timestamp())
        while due := [r for r in returns if r[0] < hour_end]:
            first = min(due, key=lambda r: (r[0], r[1]))
            returns.remove(first)
            visit_start, visitor, cart = first
            hits, t = [], 0
            for item in cart:  # back to the cart: each item viewed and added again
                t += int(rng.integers(5_000, 40_000))
                hits.append({"hitNumber": len(hits) + 1, "time": t, "type": "PAGE",
                             "eCommerceAction": {"action_type": "2"}, "product": [{**item, "productQuantity": 1}]})
                t += int(rng.integers(2_000, 20_000))
                hits.append({"hitNumber": len(hits) + 1, "time": t, "type": "EVENT",
                             "eventInfo": {"eventCategory": "ecommerce", "eventAction": "add_to_cart"},
                             "eCommerceAction": {"action_type": "3"}, "product": [item]})
            txn, t = buy(hits, t, cart, hour_start)
            rows.append(line(visitor, visit_start, hour_start, REMINDER_CHANNEL, hits, t, txn))
            if not txn:
                maybe_return(visitor, visit_start, t, cart)
        rel = f"dt={hour_start:%Y-%m-%d}/hr={hour_start:%H}/ga_sessions_{hour_start:%Y%m%d_%H}.json"
        out.ga_files[rel] = ("\n".join(rows) + "\n").encode()
    out.defects["malformed_json"] = malformed


# ---- writing ---------------------------------------------------------------------------------------------


def _copy(conn, name: str, table: pa.Table, rows_per_copy: int = 1_000_000) -> None:
    """COPY ``table`` into ``name`` with :func:`c360.warehouse.copy_arrow`, a million rows a statement, so a
    large load shows its progress."""
    from c360 import warehouse

    for offset in range(0, table.num_rows, rows_per_copy):
        warehouse.copy_arrow(conn, name, table.slice(offset, rows_per_copy))
        _progress(f"copy {name}", min(offset + rows_per_copy, table.num_rows), table.num_rows)


def load_sources(data: Generated) -> dict[str, int]:
    """Recreate the source tables and fill them. Returns row counts."""
    from c360 import pg, warehouse

    counts: dict[str, int] = {}
    for system, names in (("redshift", ("brand", "product", "customer")),
                          ("oltp", ("orders", "order_line_item", "transactions"))):
        with pg.connect(settings.DATABASES[system]) as conn:
            conn.execute(warehouse.sql_file(f"sources/{system}.sql"))
            for name in names:
                _copy(conn, name, data.tables[name])
                counts[name] = data.tables[name].num_rows
                if name in data.late:
                    _copy(conn, f"late.{name}", data.late[name])
            conn.execute(warehouse.sql_file(f"sources/{system}_indexes.sql"))
            conn.execute("analyze")
    return counts


def write_landing(data: Generated) -> int:
    from c360 import lake

    root = lake.path(f"{settings.landing_uri()}/web_analytics")
    if root.exists():
        root.rmdir(recursive=True)
    for rel, content in data.ga_files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    vm = root / "visitor_map" / "visitor_map.csv"
    vm.parent.mkdir(parents=True, exist_ok=True)
    vm.write_bytes(data.visitor_map)
    return len(data.ga_files)


def deliver_late() -> dict[str, int]:
    """Move the held-back late rows into the OLTP tables (they now 'arrive')."""
    from c360 import pg

    moved = {}
    with pg.connect(settings.OLTP_CONN_ID) as conn:
        for name in ("orders", "order_line_item", "transactions"):
            cur = conn.execute(f"insert into {name} select * from late.{name}")  # constant names
            moved[name] = cur.rowcount
            conn.execute(f"truncate late.{name}")
    return moved


cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=__doc__.split("\n\n")[0])
_DEFAULTS = Scale()


@cli.command("generate")
def generate_command(customers: int = _DEFAULTS.customers, days: int = _DEFAULTS.days,
                     orders_per_day: int = _DEFAULTS.orders_per_day,
                     sessions_per_hour: int = _DEFAULTS.sessions_per_hour, ga_days: int = _DEFAULTS.ga_days,
                     seed: int = _DEFAULTS.seed,
                     end: Annotated[str, typer.Option(help="last generated day, YYYY-MM-DD")] = _DEFAULTS.end,
                     no_defects: Annotated[bool, typer.Option("--no-defects", help="generate clean data")] = False,
                     ) -> None:
    """Recreate and fill the source systems and the landing zone."""
    settings.apply_runtime_env()
    scale = Scale(customers=customers, days=days, orders_per_day=orders_per_day, sessions_per_hour=sessions_per_hour,
                  ga_days=ga_days, end=end, seed=seed, defects=not no_defects)
    data = generate(scale)
    counts = load_sources(data)
    files = write_landing(data)
    print(json.dumps({"rows": counts, "ga_files": files, "defects": data.defects}))


@cli.command("deliver-late")
def deliver_late_command() -> None:
    """Insert the held-back late-arriving OLTP rows."""
    settings.apply_runtime_env()
    print(json.dumps(deliver_late()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cli(prog_name="python -m c360.generator")
