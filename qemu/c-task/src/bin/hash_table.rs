//! The hash-table example in C (examples/c/hash_table.c), debug flags off.
#![no_std]
#![no_main]

memserver_task_client::client_task!(task_main, stack = 64 * 1024);

fn task_main(boot: memserver_sel4_abi::ClientBoot, root: sel4::cap::Endpoint) -> ! {
    memserver_c_task::run(boot, root, memserver_c_task::Program { name: "hash_table.c", debug_flags: false })
}
