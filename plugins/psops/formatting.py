"""How amounts are written for people: approval requests, digests, summaries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal


def money(value) -> str:
    """An amount with thousands separators and two decimals ("1,234.50"); None is 0."""
    return f"{float(value or 0):,.2f}"


def worth_text(items: Iterable[dict], *, currency_codes: bool = False) -> str:
    """What outbox rows or correction briefs (`worth`, `currency`) are worth, for people:
    amounts in different currencies are never added up. All in one currency: the bare
    amount ("7,313.38"; "7,313.38 USD" with `currency_codes`); else "7,313.38 USD, 120.00 EUR"."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for item in items:
        totals[item["currency"] or "?"] += Decimal(str(item["worth"] or 0))
    if len(totals) <= 1 and not currency_codes:
        return money(sum(totals.values(), Decimal(0)))
    return ", ".join(f"{money(totals[currency])} {currency}" for currency in sorted(totals))


def amounts_by_currency(amounts: dict) -> str:
    """{currency: amount} as "EUR 1,234.50, USD 20.00" (currencies in order; "0" if none)."""
    return ", ".join(f"{currency} {money(amount)}"
                     for currency, amount in sorted(amounts.items())) or "0"


def chat_text(text) -> str:
    """Source text for a chat message (Slack mrkdwn): `&`, `<` and `>` escaped, so a name
    like `<!channel>` is shown, never a mention or a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_cell(text) -> str:
    """Source text for one cell of a Markdown table: no new row, no column, no HTML."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|")
            .replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " "))
