//! Enrichment at capture: the rule sets that fill in what a request leaves out and the one
//! function, [`price_order`], that turns a parsed request into priced lines, discounts,
//! shipping and totals.
//!
//! The rules are data (const tables), deterministic, and documented in their modules:
//! [`address`] (country list, postal code formats, normalization), [`tax`] (rates per
//! destination, half-up rounding per line), [`shipping`] (rate table per method and zone, free
//! shipping threshold) and [`promotions`] (codes and their conditions).
//!
//! The order of the steps, each on checked integer minor units:
//! 1. each line's tax: the request's `tax_minor`, else the destination's rate on the line after
//!    its discount; line total = quantity × unit price − discount + tax;
//! 2. merchandise = Σ (quantity × unit price − line discount); the channel's own order discounts
//!    may not exceed it;
//! 3. the shipping price: the request's `price_minor`, else the rate table (its free shipping
//!    threshold looks at the merchandise);
//! 4. promotion codes become order discounts (conditions checked against the merchandise);
//! 5. the shipping tax: the request's `tax_minor`, else the rate on the shipping price after a
//!    free shipping code, where the destination taxes shipping;
//! 6. totals: grand = subtotal − discounts + taxes + shipping.
//!
//! Both request parsers (the `Value` walker and the typed fast path) call [`price_order`], so
//! they cannot price an order differently.

pub mod address;
pub mod promotions;
pub mod shipping;
pub mod tax;

use waybill_schemas::events::{Address, Discount, OrderLine, Shipping, Totals};
use waybill_schemas::{Currency, Money, Quantity, Sku, ValueError};

use promotions::Promotion;

/// A parsed line, its tax possibly still to be computed.
#[derive(Debug, Clone, PartialEq)]
pub struct LineDraft {
    pub line_no: u32,
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub discount: Money,
    /// quantity × unit price − discount (checked by [`line_net`]).
    pub net: Money,
    /// `None`: computed by the tax rules.
    pub tax: Option<Money>,
}

/// The parsed shipping choice, its price and tax possibly still to be computed.
#[derive(Debug, Clone, PartialEq)]
pub struct ShippingDraft {
    pub method: String,
    /// `None`: from the rate table (the method must then be one it knows).
    pub price: Option<Money>,
    /// `None`: computed by the tax rules.
    pub tax: Option<Money>,
}

/// Everything pricing needs from a parsed request.
#[derive(Debug)]
pub struct OrderDraft<'a> {
    pub currency: Currency,
    pub lines: Vec<LineDraft>,
    /// The channel's own order discounts.
    pub discounts: Vec<Discount>,
    /// Promotion codes with their index in the request's `promo_codes`.
    pub promotions: Vec<(usize, &'static Promotion)>,
    pub shipping: ShippingDraft,
    pub ship_to: &'a Address,
}

/// A priced order.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    pub lines: Vec<OrderLine>,
    /// The channel's discounts, then one per promotion code.
    pub discounts: Vec<Discount>,
    pub shipping: Shipping,
    pub totals: Totals,
}

/// A refused part of the order: the request path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingError {
    pub field: String,
    pub detail: String,
}

fn refused(field: impl Into<String>, detail: impl Into<String>) -> Vec<PricingError> {
    vec![PricingError {
        field: field.into(),
        detail: detail.into(),
    }]
}

/// quantity × unit price − discount, checked when the line is parsed. The error names the
/// refused field of the line (`None`: the line itself) and why.
pub fn line_net(
    quantity: Quantity,
    unit_price: Money,
    discount: Money,
) -> Result<Money, (Option<&'static str>, String)> {
    let Ok(gross) = unit_price.checked_mul(quantity.get()) else {
        return Err((None, "quantity × unit price overflows".to_owned()));
    };
    if discount.minor > gross.minor {
        return Err((
            Some("discount_minor"),
            format!(
                "exceeds the line amount (quantity × unit price = {})",
                gross.minor
            ),
        ));
    }
    gross
        .checked_sub(discount)
        .map_err(|_| (None, "line amount overflows".to_owned()))
}

/// Prices `draft` (see the module doc for the steps), or every refused part with its path.
pub fn price_order(draft: &OrderDraft<'_>) -> Result<Priced, Vec<PricingError>> {
    let currency = draft.currency;
    let rule = tax::rule_for(draft.ship_to);

    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(draft.lines.len());
    for (i, line) in draft.lines.iter().enumerate() {
        let tax = match line.tax {
            Some(tax) => Some(tax),
            None => tax::tax_on(line.net.minor, rule.rate_ppm).map(|t| Money::new(t, currency)),
        };
        match tax.and_then(|tax| line.net.checked_add(tax).ok().map(|total| (tax, total))) {
            Some((tax, total)) => lines.push(OrderLine {
                line_no: line.line_no,
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                discount: line.discount,
                tax,
                total,
            }),
            None => errors.push(PricingError {
                field: format!("lines[{i}]"),
                detail: "line total overflows".to_owned(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let overflow = || refused("lines", "order total overflows");
    let merchandise =
        sum(lines.iter().map(|l| l.total.minor - l.tax.minor), currency).ok_or_else(overflow)?;
    let channel_discounts =
        sum(draft.discounts.iter().map(|d| d.amount.minor), currency).ok_or_else(overflow)?;
    if channel_discounts.minor > merchandise.minor {
        return Err(refused(
            "discounts",
            format!(
                "order discounts ({}) exceed the subtotal after line discounts ({})",
                channel_discounts.minor, merchandise.minor
            ),
        ));
    }

    let shipping_price = match draft.shipping.price {
        Some(price) => price,
        None => shipping_rate(
            &draft.shipping.method,
            draft.ship_to,
            currency,
            merchandise.minor,
        )?,
    };
    let applied = promotions::apply(
        &draft.promotions,
        currency,
        merchandise.minor,
        merchandise.minor - channel_discounts.minor,
        shipping_price.minor,
    )
    .map_err(|refused| {
        refused
            .into_iter()
            .map(|(i, detail)| PricingError {
                field: format!("promo_codes[{i}]"),
                detail,
            })
            .collect::<Vec<_>>()
    })?;
    let shipping_tax = match draft.shipping.tax {
        Some(tax) => tax,
        None if rule.shipping_taxable => {
            let taxed = shipping_price.minor - applied.shipping_minor;
            let tax = tax::tax_on(taxed, rule.rate_ppm).ok_or_else(overflow)?;
            Money::new(tax, currency)
        }
        None => Money::zero(currency),
    };
    let shipping = Shipping {
        method: draft.shipping.method.clone(),
        price: shipping_price,
        tax: shipping_tax,
    };
    let mut discounts = draft.discounts.clone();
    discounts.extend(applied.discounts);
    let totals = match totals(&lines, &discounts, &shipping, currency) {
        Ok(t) if t.grand_total.minor < 0 => {
            return Err(refused("discounts", "discounts exceed the order total"))
        }
        Ok(t) => t,
        Err(_) => return Err(overflow()),
    };
    Ok(Priced {
        lines,
        discounts,
        shipping,
        totals,
    })
}

fn shipping_rate(
    method: &str,
    ship_to: &Address,
    currency: Currency,
    merchandise_minor: i64,
) -> Result<Money, Vec<PricingError>> {
    let Some(method) = shipping::Method::parse(method) else {
        return Err(refused("shipping.method", unknown_method_detail()));
    };
    let zone = shipping::Zone::of(&ship_to.country);
    match shipping::rate(method, zone, currency, merchandise_minor) {
        Some(price) => Ok(Money::new(price, currency)),
        None => Err(refused(
            "shipping.price_minor",
            format!(
                "is required for orders in {currency}: the shipping rate table has rates in {}",
                shipping::RATE_CARDS
                    .iter()
                    .map(|c| c.currency)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The error of a method the rate table does not know, sent without a price.
pub fn unknown_method_detail() -> String {
    format!(
        "has no shipping rate (methods with rates: {}); send price_minor to use another method",
        shipping::Method::NAMES
    )
}

fn sum(amounts: impl Iterator<Item = i64>, currency: Currency) -> Option<Money> {
    let mut total = 0i64;
    for amount in amounts {
        total = total.checked_add(amount)?;
    }
    Some(Money::new(total, currency))
}

/// grand = subtotal − discounts + taxes + shipping, all checked.
pub(crate) fn totals(
    lines: &[OrderLine],
    discounts: &[Discount],
    shipping: &Shipping,
    currency: Currency,
) -> Result<Totals, ValueError> {
    let zero = Money::zero(currency);
    let mut subtotal = zero;
    let mut discount_total = zero;
    let mut tax_total = shipping.tax;
    for line in lines {
        subtotal = subtotal.checked_add(line.unit_price.checked_mul(line.quantity.get())?)?;
        discount_total = discount_total.checked_add(line.discount)?;
        tax_total = tax_total.checked_add(line.tax)?;
    }
    for d in discounts {
        discount_total = discount_total.checked_add(d.amount)?;
    }
    let grand_total = subtotal
        .checked_sub(discount_total)?
        .checked_add(tax_total)?
        .checked_add(shipping.price)?;
    Ok(Totals {
        subtotal,
        discount_total,
        tax_total,
        shipping_total: shipping.price,
        grand_total,
    })
}
