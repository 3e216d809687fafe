//! The one macro behind the source and sink registries: from a list of
//! `Variant(Config) = "kind"` lines it makes the typed enum of kinds and
//! everything the loader needs to read, list and build them, so adding a
//! kind is one line in its registry.

/// Declares an enum of component kinds, each holding its typed config.
macro_rules! component_kinds {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident: dyn $Builder:path {
            $( $(#[$vmeta:meta])* $Variant:ident($Config:ty) = $kind:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis enum $Enum {
            $( $(#[$vmeta])* $Variant($Config), )*
        }

        impl $Enum {
            /// Every kind, as written in configuration.
            pub const KINDS: &'static [&'static str] = &[$($kind),*];

            /// The kind as written in configuration.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( Self::$Variant(_) => $kind, )*
                }
            }

            /// The keys a kind's table takes (besides the ones every kind
            /// takes), or `None` for an unknown kind.
            pub fn keys_of(kind: &str) -> Option<&'static [&'static str]> {
                match kind {
                    $( $kind => Some($crate::config::keys_of::<$Config>()), )*
                    _ => None,
                }
            }

            /// Reads a kind's table (`None` for an unknown kind).
            pub fn parse<'de, D: serde::Deserializer<'de>>(kind: &str, table: D) -> Option<Result<Self, D::Error>> {
                match kind {
                    $( $kind => Some(<$Config as serde::Deserialize>::deserialize(table).map(Self::$Variant)), )*
                    _ => None,
                }
            }

            /// The kind's config as written back, defaults filled in.
            pub fn to_table(&self) -> Result<toml::Table, toml::ser::Error> {
                match self {
                    $( Self::$Variant(c) => toml::Table::try_from(c), )*
                }
            }

            /// What builds and describes this kind.
            pub fn builder(&self) -> &dyn $Builder {
                match self {
                    $( Self::$Variant(c) => c, )*
                }
            }

            /// The same, to change what loading settles (relative paths).
            pub fn builder_mut(&mut self) -> &mut dyn $Builder {
                match self {
                    $( Self::$Variant(c) => c, )*
                }
            }
        }
    };
}

pub(crate) use component_kinds;
