use super::*;

const DAY: u16 = 20_418;

fn entry(kind: &str, txn: &str, amount: i64) -> LedgerItem {
    LedgerItem {
        kind: kind.into(),
        gateway_txn_id: txn.into(),
        order_id: format!("order-of-{txn}"),
        channel: "web".into(),
        currency: "USD".into(),
        amount,
        day: DAY,
    }
}

fn line(no: u32, kind: &str, txn: &str, gross: i64, fee: i64) -> ReportItem {
    ReportItem {
        report_id: "r1".into(),
        line_no: no,
        gateway_txn_id: txn.into(),
        kind: kind.into(),
        order_id: String::new(),
        currency: "USD".into(),
        gross,
        fee,
        original_currency: String::new(),
        original_amount: 0,
        payout_id: "po_1".into(),
        transaction_date: DAY,
    }
}

fn outcomes(findings: &[Finding]) -> Vec<(&str, Outcome)> {
    findings
        .iter()
        .map(|f| (f.item_key.as_str(), f.outcome))
        .collect()
}

#[test]
fn the_capture_fee_is_the_schedule_rounded_half_up() {
    let fees = FeeSchedule::default();
    assert_eq!(fees.capture_fee(10_000, usd()), 290 + 30);
    assert_eq!(fees.capture_fee(3_240, usd()), 94 + 30); // 93.96
    assert_eq!(fees.capture_fee(50, usd()), 1 + 30); // 1.45 rounds down
    assert_eq!(fees.capture_fee(-10_000, usd()), 320);
}

#[test]
fn every_awkward_case_yields_exactly_its_discrepancy() {
    let fees = FeeSchedule::default();
    let ledger = vec![
        entry("capture", "cap_ok", 10_000),
        entry("capture", "cap_cent", 5_000),
        entry("capture", "cap_missing", 7_000),
        entry("capture", "cap_eur", 10_000),
        entry("capture", "cap_fee", 2_000),
        entry("capture", "cap_dup", 1_000),
        entry("refund", "re_1", 500),
        entry("chargeback_opened", "dp_1", 3_000),
        entry("chargeback_won", "dp_1", 0),
        entry("chargeback_opened", "dp_2", 100),
        entry("chargeback_lost", "dp_2", 100),
        entry("authorization", "auth_1", 10_000),
    ];
    let mut eur = line(
        4,
        "capture",
        "cap_eur",
        10_870,
        fees.capture_fee(10_870, usd()),
    );
    eur.currency = "GBP".into();
    eur.original_currency = "USD".into();
    eur.original_amount = 10_000;
    let report = vec![
        line(1, "capture", "cap_ok", 10_000, 320),
        line(
            2,
            "capture",
            "cap_cent",
            4_999,
            fees.capture_fee(4_999, usd()),
        ),
        eur,
        line(5, "capture", "cap_fee", 2_000, 500),
        line(6, "capture", "cap_dup", 1_000, 59),
        line(7, "capture", "cap_dup", 1_000, 59),
        line(8, "refund", "re_1", -500, 0),
        line(9, "chargeback", "dp_2", -100, 1_500),
        line(10, "chargeback_reversal", "dp_1", 3_000, 0),
        line(11, "fee", "fee_monthly", 0, 1_500),
        line(12, "capture", "cap_unknown", 800, 53),
    ];
    let findings = reconcile(&ledger, &report, &fees);
    assert_eq!(
        outcomes(&findings),
        vec![
            ("capture:cap_cent", Outcome::AmountMismatch),
            ("capture:cap_dup", Outcome::Matched),
            ("capture:cap_dup:line7", Outcome::Duplicate),
            ("capture:cap_eur", Outcome::Matched),
            ("capture:cap_fee", Outcome::FeeMismatch),
            ("capture:cap_missing", Outcome::MissingInReport),
            ("capture:cap_ok", Outcome::Matched),
            ("capture:cap_unknown", Outcome::MissingInLedger),
            ("chargeback:dp_2", Outcome::Matched),
            ("chargeback_reversal:dp_1", Outcome::Matched),
            ("fee:fee_monthly", Outcome::FeeMismatch),
            ("refund:re_1", Outcome::Matched),
        ]
    );
    let cent = &findings[0];
    assert_eq!((cent.ledger_amount, cent.report_amount), (5_000, 4_999));
    // Amounts in words by the currency's exponent, never minor units labelled as a currency.
    assert_eq!(
        cent.detail,
        format!(
            "ledger 50.00 {c}, report 49.99 {c} (difference -0.01 {c})",
            c = cent.currency
        )
    );
    assert_eq!(cent.order_id, "order-of-cap_cent");
    assert_eq!(cent.channel, "web");
    let eur = &findings[3];
    assert!(eur.detail.contains("converted"), "{}", eur.detail);
    let fee = &findings[4];
    assert_eq!((fee.expected_fee, fee.report_fee), (88, 500));
    assert!(fee.detail.contains("fee 5.00 "), "{}", fee.detail);
    assert!(fee.detail.contains("gives 0.88 "), "{}", fee.detail);
    let missing = &findings[5];
    assert_eq!((missing.ledger_amount, missing.report_amount), (7_000, 0));
}

#[test]
fn a_converted_line_in_the_wrong_original_currency_is_an_amount_mismatch() {
    let mut converted = line(1, "capture", "cap_1", 9_000, 0);
    converted.currency = "EUR".into();
    converted.original_currency = "GBP".into();
    converted.original_amount = 10_000;
    let findings = reconcile(
        &[entry("capture", "cap_1", 10_000)],
        &[converted],
        &FeeSchedule::new(0, no_fixed_fees()),
    );
    assert_eq!(
        outcomes(&findings),
        vec![("capture:cap_1", Outcome::AmountMismatch)]
    );
}

#[test]
fn matching_is_the_same_whatever_order_the_inputs_come_in() {
    let ledger = vec![entry("capture", "a", 100), entry("refund", "b", 50)];
    let report = vec![
        line(1, "capture", "a", 100, 33),
        line(2, "capture", "a", 100, 33),
        line(3, "refund", "b", -40, 0),
    ];
    let fees = FeeSchedule::default();
    let forward = reconcile(&ledger, &report, &fees);
    let mut ledger_rev = ledger.clone();
    ledger_rev.reverse();
    let mut report_rev = report.clone();
    report_rev.reverse();
    assert_eq!(reconcile(&ledger_rev, &report_rev, &fees), forward);
    assert_eq!(forward[1].outcome, Outcome::Duplicate);
    assert_eq!(forward[1].item_key, "capture:a:line2");
}

#[test]
fn outcomes_parse_back_from_their_names() {
    for outcome in [Outcome::Matched].iter().chain(Outcome::DISCREPANCIES) {
        assert_eq!(Outcome::parse(outcome.as_str()), Some(*outcome));
    }
    assert_eq!(Outcome::parse("lost"), None);
}

fn usd() -> waybill_schemas::Currency {
    waybill_schemas::Currency::parse("USD").expect("USD")
}

/// Zero fixed and dispute fees in the currencies the tests use.
fn no_fixed_fees(
) -> std::collections::BTreeMap<waybill_schemas::Currency, waybill_schemas::fees::CurrencyFees> {
    ["USD", "EUR"]
        .iter()
        .map(|c| {
            (
                waybill_schemas::Currency::parse(c).expect("currency"),
                waybill_schemas::fees::CurrencyFees {
                    fixed: 0,
                    dispute: 0,
                },
            )
        })
        .collect()
}
