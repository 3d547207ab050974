//! Closed sets of names (actions, backoffs, token placements), each name
//! written once: [`named_enum!`] gives an enum its `ALL` values, its `NAMES`,
//! `as_str`, `Display` and `FromStr` from one table. The CLI parses them with
//! a value parser over `NAMES`; serde's `rename_all = "lowercase"` must agree,
//! which each enum's tests check.

/// Implements `ALL`, `NAMES`, `as_str`, `Display` and `FromStr` (with
/// [`crate::error::UnknownName`]) for a fieldless enum from a table of
/// `Variant => "name"`.
macro_rules! named_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// Every name, as scenario files and the command line write them.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name as scenario files and the command line write it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::error::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::error::UnknownName {
                        kind: $kind,
                        name: s.to_string(),
                        known: $ty::NAMES,
                    })
            }
        }
    };
}
