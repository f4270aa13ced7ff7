//! The scenarios, each named after the rule it checks.

mod create;
mod debug;
mod dma;
mod introspect;
mod kmalloc;
mod library;
mod magazines;
mod objects;
mod release;
mod session;
mod stats;
mod validate;

use alloc::format;

use crate::client::{Client, Failure, ok};
use crate::harness::Harness;

/// One scenario: a name (the rule) and the check.
pub struct Scenario {
    /// The rule it checks, in snake case.
    pub name: &'static str,
    /// Runs it against a platform.
    pub run: fn(&mut dyn Harness) -> Result<(), Failure>,
}

/// Fails the scenario with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!($($fmt)+));
        }
    };
}

/// The client task the suite runs as.
pub const CLIENT: &str = "conformance";
/// A second client task, for isolation scenarios.
pub const PEER: &str = "conformance-peer";
/// A third client task, whose kmalloc caches are debug caches (its `slub_debug` in
/// `system.toml` is [`DEBUG_SLUB_DEBUG`]).
pub const DEBUG: &str = "conformance-debug";
/// The `slub_debug` setting of [`DEBUG`].
pub const DEBUG_SLUB_DEBUG: &str = "FZPU,kmalloc-*";

/// Opens a session as `name` and says `Hello`.
pub fn connect(h: &mut dyn Harness, name: &str) -> Result<Client, Failure> {
    let session = h.open(name).map_err(|e| format!("open {name}: {}", e.0))?;
    let mut client = Client::new(session);
    ok("hello", client.hello(name))?;
    Ok(client)
}

/// Every scenario, in the order they run.
pub static SCENARIOS: &[Scenario] = &[
    // Session and protocol rules.
    Scenario { name: "request_before_hello_is_refused", run: session::request_before_hello_is_refused },
    Scenario { name: "hello_with_other_version_is_version_mismatch", run: session::hello_other_version },
    Scenario { name: "hello_twice_is_refused", run: session::hello_twice_is_refused },
    Scenario { name: "hello_with_another_clients_name_is_refused", run: session::hello_wrong_name },
    Scenario { name: "garbage_bytes_are_malformed_and_server_goes_on", run: session::garbage_is_malformed },
    Scenario { name: "empty_message_is_malformed", run: session::empty_message_is_malformed },
    Scenario { name: "oversized_message_is_malformed", run: session::oversized_message_is_malformed },
    Scenario { name: "truncated_message_is_malformed", run: session::truncated_message_is_malformed },
    Scenario { name: "unknown_cache_id_is_no_such_cache", run: session::unknown_cache_id },
    Scenario { name: "control_region_header_is_valid", run: session::control_header_valid },
    Scenario { name: "goodbye_reclaims_everything", run: session::goodbye_reclaims_everything },
    // Rule 1: cache_create arguments.
    Scenario { name: "create_rejects_bad_names", run: create::bad_names },
    Scenario { name: "create_rejects_disguising_names", run: create::disguising_names },
    Scenario { name: "create_rejects_duplicate_name", run: create::duplicate_name },
    Scenario { name: "create_rejects_bad_sizes", run: create::bad_sizes },
    Scenario { name: "create_rejects_bad_alignments", run: create::bad_alignments },
    Scenario { name: "create_rejects_unknown_flags", run: create::unknown_flags },
    // Rules 2-3: layout.
    Scenario { name: "hwcache_align_follows_calculate_alignment", run: create::hwcache_align },
    Scenario { name: "explicit_align_is_object_address_alignment", run: create::explicit_align },
    Scenario { name: "slab_order_leftover_at_most_one_sixteenth", run: create::slab_order },
    // Rules 4-8: objects.
    Scenario { name: "alloc_returns_distinct_aligned_objects", run: objects::distinct_aligned },
    Scenario { name: "alloc_past_quota_is_quota_exceeded_and_changes_nothing", run: objects::quota },
    Scenario { name: "zalloc_returns_zeroed_memory", run: objects::zalloc_zeroes },
    Scenario { name: "zalloc_on_ctor_cache_is_invalid_argument", run: objects::zalloc_ctor },
    Scenario { name: "ctor_objects_are_fresh_exactly_once", run: objects::ctor_fresh_once },
    Scenario { name: "free_outside_window_is_invalid_object", run: objects::free_outside_window },
    Scenario { name: "free_inside_object_is_invalid_object", run: objects::free_inside_object },
    Scenario { name: "free_to_wrong_cache_is_wrong_cache", run: objects::free_wrong_cache },
    Scenario { name: "double_free_is_detected", run: objects::double_free },
    Scenario { name: "rejected_free_changes_nothing", run: objects::rejected_free_changes_nothing },
    Scenario { name: "destroy_busy_cache_reports_live_and_stays_usable", run: objects::destroy_busy },
    Scenario { name: "destroy_frees_name_and_invalidates_id", run: objects::destroy_reuse },
    Scenario { name: "shrink_returns_empty_slabs_to_pool", run: objects::shrink },
    Scenario { name: "handles_of_other_clients_are_rejected", run: objects::other_clients_handles },
    // Rule 10: debug flags.
    Scenario { name: "poison_pattern_is_linux_bytes", run: debug::poison_pattern },
    Scenario { name: "poison_write_after_free_is_reported", run: debug::poison_write_after_free },
    Scenario { name: "red_zone_overrun_is_reported", run: debug::red_zone_overrun },
    Scenario { name: "red_zone_underrun_is_reported", run: debug::red_zone_underrun },
    Scenario { name: "store_user_records_last_alloc_and_free", run: debug::store_user },
    Scenario { name: "object_owner_without_store_user_is_not_supported", run: debug::owner_without_store_user },
    Scenario { name: "debug_caches_bypass_magazines", run: debug::debug_bypasses_magazines },
    Scenario { name: "consistency_checks_cache_serves_and_detects", run: debug::consistency_checks },
    Scenario { name: "panic_and_dma_flags_are_kept", run: debug::panic_dma_flags },
    Scenario { name: "dma_addr_is_the_physical_address_or_not_supported", run: dma::dma_addr },
    // Rule 11: kmalloc.
    Scenario { name: "kmalloc_54_bytes_comes_from_kmalloc_64", run: kmalloc::size_class_54 },
    Scenario { name: "kmalloc_classes_follow_linux", run: kmalloc::classes },
    Scenario { name: "kmalloc_large_takes_whole_pages", run: kmalloc::large },
    Scenario { name: "kfree_rejects_double_free_and_non_objects", run: kmalloc::kfree_checks },
    Scenario { name: "kmalloc_zero_on_the_wire_is_invalid_argument", run: kmalloc::zero },
    Scenario {
        name: "kfree_takes_any_cache_object_back_to_its_cache",
        run: kmalloc::kfree_takes_any_cache_object_back_to_its_cache,
    },
    Scenario { name: "kmalloc_sizes_are_naturally_aligned", run: kmalloc::kmalloc_sizes_are_naturally_aligned },
    Scenario {
        name: "kmalloc_caches_have_magazine_slots_from_hello",
        run: kmalloc::kmalloc_caches_have_magazine_slots_from_hello,
    },
    Scenario {
        name: "page_owner_table_follows_slabs_and_large_kmallocs",
        run: kmalloc::page_owner_table_follows_slabs_and_large_kmallocs,
    },
    Scenario { name: "forged_tables_mislead_only_the_client", run: kmalloc::forged_tables_mislead_only_the_client },
    // The client library's kmalloc rules (memclient on the mapped window and control region).
    Scenario { name: "kmalloc_zero_is_zero_size_ptr", run: library::kmalloc_zero_is_zero_size_ptr },
    Scenario { name: "kmalloc_goes_through_magazines", run: library::kmalloc_goes_through_magazines },
    Scenario {
        name: "kfree_of_a_cache_object_goes_to_its_cache",
        run: library::kfree_of_a_cache_object_goes_to_its_cache,
    },
    Scenario { name: "ksize_is_the_size_class", run: library::ksize_is_the_size_class },
    Scenario {
        name: "freed_large_kmallocs_are_reused_and_given_back",
        run: library::freed_large_kmallocs_are_reused_and_given_back,
    },
    Scenario { name: "krealloc_follows_linux", run: library::krealloc_follows_linux },
    Scenario { name: "kcalloc_checks_overflow_and_zeroes", run: library::kcalloc_checks_overflow_and_zeroes },
    Scenario { name: "kmalloc_addresses_are_naturally_aligned", run: library::kmalloc_addresses_are_naturally_aligned },
    Scenario { name: "alloc_bulk_is_all_or_nothing", run: library::alloc_bulk_is_all_or_nothing },
    Scenario {
        name: "ctor_constructs_every_object_of_a_new_slab",
        run: library::ctor_constructs_every_object_of_a_new_slab,
    },
    Scenario { name: "dtor_runs_before_slabs_leave", run: library::dtor_runs_before_slabs_leave },
    // Validation and slub_debug: the cases of Linux's lib/slub_kunit.c.
    Scenario { name: "slub_kunit_test_clobber_zone", run: validate::clobber_zone },
    Scenario { name: "slub_kunit_test_first_word", run: validate::first_word },
    Scenario { name: "slub_kunit_test_clobber_50th_byte", run: validate::clobber_50th_byte },
    Scenario { name: "slub_kunit_test_clobber_redzone_free", run: validate::clobber_redzone_free },
    Scenario { name: "slub_kunit_test_leak_destroy", run: validate::leak_destroy },
    Scenario { name: "slub_kunit_test_kmalloc_redzone_access", run: validate::kmalloc_redzone_access },
    Scenario { name: "slub_kunit_test_krealloc_redzone_zeroing", run: validate::krealloc_redzone_zeroing },
    Scenario { name: "validate_counts_each_corrupted_region_once", run: validate::each_corrupted_region_counts_once },
    Scenario {
        name: "validate_of_another_clients_cache_needs_introspection",
        run: validate::validate_of_another_clients_cache_needs_introspection,
    },
    Scenario {
        name: "slub_debug_makes_kmalloc_caches_debug_caches",
        run: validate::slub_debug_makes_kmalloc_caches_debug_caches,
    },
    Scenario { name: "kmalloc_slack_is_red_zone", run: validate::kmalloc_slack_is_red_zone },
    // Destructors, and the flags that keep memory in a cache.
    Scenario { name: "dtor_cache_releases_slabs_in_two_phases", run: release::dtor_cache_releases_slabs_in_two_phases },
    Scenario { name: "linux_flags_are_accepted_and_reported", run: release::linux_flags_are_accepted_and_reported },
    Scenario { name: "reclaim_account_pages_show_in_stats", run: release::reclaim_account_pages_show_in_stats },
    Scenario {
        name: "typesafe_by_rcu_objects_are_not_poisoned",
        run: release::typesafe_by_rcu_objects_are_not_poisoned,
    },
    Scenario {
        name: "pressure_never_reaps_no_reap_rcu_or_dtor_caches",
        run: release::pressure_never_reaps_no_reap_rcu_or_dtor_caches,
    },
    // Magazines.
    Scenario { name: "magazine_refill_then_drain_round_trips", run: magazines::refill_drain },
    Scenario { name: "magazine_count_above_capacity_is_rejected", run: magazines::count_above_capacity },
    Scenario { name: "magazine_with_duplicate_handle_is_rejected", run: magazines::duplicate_handle },
    Scenario { name: "magazine_with_foreign_handle_is_rejected", run: magazines::foreign_handle },
    Scenario { name: "magazine_refill_of_nonempty_is_rejected", run: magazines::refill_nonempty },
    Scenario { name: "magazine_objects_count_as_allocated", run: magazines::count_as_allocated },
    Scenario { name: "magazine_exchange_on_wrong_slot_is_rejected", run: magazines::wrong_slot },
    // Rule 14: statistics.
    Scenario { name: "slabinfo_rows_match_cache_info", run: stats::slabinfo_rows },
    Scenario { name: "slabinfo_pages_cover_every_cache", run: stats::slabinfo_paging },
    Scenario { name: "slabinfo_of_all_clients_needs_introspection", run: stats::slabinfo_all_needs_rights },
    Scenario { name: "stats_account_frames_and_requests", run: stats::stats_accounting },
    // Introspection across clients (memctl).
    Scenario { name: "client_stats_of_self_needs_no_rights", run: introspect::client_stats_of_self_needs_no_rights },
    Scenario {
        name: "client_stats_of_another_needs_introspection",
        run: introspect::client_stats_of_another_needs_introspection,
    },
    Scenario {
        name: "client_stats_of_unconnected_client_is_invalid_argument",
        run: introspect::client_stats_of_unconnected_client_is_invalid_argument,
    },
    Scenario {
        name: "clients_lists_open_sessions_and_needs_introspection",
        run: introspect::clients_lists_open_sessions_and_needs_introspection,
    },
    Scenario {
        name: "stats_report_client_published_magazine_counters",
        run: introspect::stats_report_client_published_magazine_counters,
    },
];
