//! The seeded, read-only data the demo services serve.
//!
//! A handful of users and orders, fixed at compile time so every run of the
//! demo (and every test) sees the same ids: users `1..=5`, orders
//! `1001..=1006`. Money is in integer cents, never floating point.

use serde::Serialize;

/// A customer, as user-service returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: u32,
    pub name: &'static str,
    pub email: &'static str,
}

/// One line of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub sku: &'static str,
    pub name: &'static str,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

/// An order, as order-service stores it (before it is enriched with its user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: u32,
    pub user_id: u32,
    pub items: &'static [Item],
    pub total_cents: u64,
    pub currency: &'static str,
}

/// Every user, ordered by id.
pub const USERS: &[User] = &[
    User {
        id: 1,
        name: "Ada Lovelace",
        email: "ada.lovelace@example.com",
    },
    User {
        id: 2,
        name: "Grace Hopper",
        email: "grace.hopper@example.com",
    },
    User {
        id: 3,
        name: "Alan Turing",
        email: "alan.turing@example.org",
    },
    User {
        id: 4,
        name: "Katherine Johnson",
        email: "katherine.johnson@example.org",
    },
    User {
        id: 5,
        name: "Margaret Hamilton",
        email: "margaret.hamilton@example.net",
    },
];

const fn item(sku: &'static str, name: &'static str, quantity: u32, unit_price_cents: u64) -> Item {
    Item {
        sku,
        name,
        quantity,
        unit_price_cents,
    }
}

/// Every order, ordered by id.
pub const ORDERS: &[Order] = &[
    Order {
        id: 1001,
        user_id: 1,
        items: &[item("KB-204", "Mechanical keyboard", 1, 8900)],
        total_cents: 8900,
        currency: "EUR",
    },
    Order {
        id: 1002,
        user_id: 2,
        items: &[
            item("MS-110", "Wireless mouse", 1, 2900),
            item("PD-010", "Mouse pad", 2, 900),
        ],
        total_cents: 4700,
        currency: "EUR",
    },
    Order {
        id: 1003,
        user_id: 1,
        items: &[item("MN-270", "27-inch monitor", 2, 24900)],
        total_cents: 49800,
        currency: "EUR",
    },
    Order {
        id: 1004,
        user_id: 3,
        items: &[item("HB-500", "USB-C hub", 1, 3900)],
        total_cents: 3900,
        currency: "EUR",
    },
    Order {
        id: 1005,
        user_id: 4,
        items: &[
            item("CB-100", "USB-C cable", 3, 1200),
            item("HP-300", "Noise-cancelling headphones", 1, 12900),
        ],
        total_cents: 16500,
        currency: "EUR",
    },
    Order {
        id: 1006,
        user_id: 5,
        items: &[item("WC-720", "1080p webcam", 1, 6900)],
        total_cents: 6900,
        currency: "EUR",
    },
];

/// The user with this id, if any.
pub fn user(id: u32) -> Option<&'static User> {
    USERS.iter().find(|user| user.id == id)
}

/// The order with this id, if any.
pub fn order(id: u32) -> Option<&'static Order> {
    ORDERS.iter().find(|order| order.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_match_their_items() {
        for order in ORDERS {
            let sum: u64 = order
                .items
                .iter()
                .map(|item| u64::from(item.quantity) * item.unit_price_cents)
                .sum();
            assert_eq!(order.total_cents, sum, "order {}", order.id);
        }
    }

    #[test]
    fn every_order_belongs_to_a_seeded_user() {
        for order in ORDERS {
            assert!(user(order.user_id).is_some(), "order {}", order.id);
        }
    }

    #[test]
    fn ids_are_unique_and_lookups_find_them() {
        for (index, user) in USERS.iter().enumerate() {
            assert_eq!(super::user(user.id), Some(user));
            assert!(USERS[..index].iter().all(|other| other.id != user.id));
        }
        for (index, order) in ORDERS.iter().enumerate() {
            assert_eq!(super::order(order.id), Some(order));
            assert!(ORDERS[..index].iter().all(|other| other.id != order.id));
        }
        assert_eq!(user(999), None);
        assert_eq!(order(9999), None);
    }
}
