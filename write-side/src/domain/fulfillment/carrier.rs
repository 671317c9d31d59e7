//! Carrier status codes mapped to the normalized set. Carriers speak in scan codes; the rest of
//! Waybill only knows [`CarrierStatus`].

use waybill_schemas::events::CarrierStatus;

/// The normalized status of a carrier scan code (case-insensitive), or `None` for a code we do
/// not know (the webhook is then refused as malformed, naming the field).
///
/// | codes | status |
/// |---|---|
/// | `PU`, `picked_up` | picked up |
/// | `IT`, `AR` (arrived at hub), `DP` (departed hub), `in_transit` | in transit |
/// | `OD`, `out_for_delivery` | out for delivery |
/// | `DL`, `delivered` | delivered |
/// | `EX`, `FH` (failed handoff), `DA` (delivery attempt failed), `exception` | exception |
/// | `RS`, `returned_to_sender` | returned to sender |
pub fn normalize(code: &str) -> Option<CarrierStatus> {
    Some(match code.trim().to_ascii_lowercase().as_str() {
        "pu" | "picked_up" => CarrierStatus::PickedUp,
        "it" | "ar" | "dp" | "in_transit" => CarrierStatus::InTransit,
        "od" | "out_for_delivery" => CarrierStatus::OutForDelivery,
        "dl" | "delivered" => CarrierStatus::Delivered,
        "ex" | "fh" | "da" | "exception" => CarrierStatus::Exception,
        "rs" | "returned_to_sender" => CarrierStatus::ReturnedToSender,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_codes_map_to_the_normalized_statuses() {
        assert_eq!(normalize("PU"), Some(CarrierStatus::PickedUp));
        assert_eq!(normalize(" ar "), Some(CarrierStatus::InTransit));
        assert_eq!(normalize("OD"), Some(CarrierStatus::OutForDelivery));
        assert_eq!(normalize("DL"), Some(CarrierStatus::Delivered));
        assert_eq!(normalize("FH"), Some(CarrierStatus::Exception));
        assert_eq!(normalize("RS"), Some(CarrierStatus::ReturnedToSender));
        assert_eq!(normalize("ZZ"), None);
    }
}
