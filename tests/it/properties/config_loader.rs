//! Properties of the config loader.

use super::*;

#[test]
fn the_shipped_config_loads() {
    assert!(check_config(SHIPPED_CONFIG).unwrap(), "config.toml must load");
}

#[test]
fn config_loader_never_panics_on_any_text() {
    let text = prop_oneof![
        any_text(200),
        // TOML-ish: headers, keys, values, brackets, quotes.
        vec(
            prop_oneof![
                "\\[\\[?(source|listener|service|http|genesys|emulator|transform)[.a-z]{0,12}\\]\\]?",
                "[a-z_]{1,12} = [0-9a-z\"{}\\[\\], =.]{0,20}",
                "[#\\[\\]{}\"'=., a-z0-9]{0,30}",
            ],
            0..20
        )
        .prop_map(|l| l.join("\n")),
    ];
    check("config_text", 256, text, |t| check_config(&t).map(drop));
}

fn scalar() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|i| i.to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("inf".to_string()),
        Just("nan".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any_text(12).prop_map(|s| format!("{s:?}")),
        Just("\"\"".to_string()),
        prop::sample::select(vec!["\"0s\"", "\"1ms\"", "\"99999999999h\"", "\"5x\"", "\"-5m\""])
            .prop_map(str::to_string),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[1, \"a\", {}]".to_string()),
        Just("{ kind = \"file\" }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just(String::new()),
    ]
    .boxed()
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), scalar()).prop_map(|(i, v)| Mutation::SetValue(i, v)),
        (
            any::<usize>(),
            prop_oneof![
                Just("[[source]]".to_string()),
                Just("[[listener]]".to_string()),
                Just("[emulator.bulk]".to_string()),
                (key(), scalar()).prop_map(|(k, v)| format!("{k} = {v}")),
            ]
        )
            .prop_map(|(i, l)| Mutation::Insert(i, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
    .boxed()
}

#[test]
fn config_loader_keeps_its_invariants_on_mutations_of_the_shipped_config() {
    check("config_mutations", 256, vec(mutation(), 1..4), |m| {
        check_config(&mutate(SHIPPED_CONFIG, &m)).map(drop)
    });
}
