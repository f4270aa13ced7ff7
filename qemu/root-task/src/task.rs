//! Starting a task from its own ELF image, in a VSpace and CSpace of its own.

use core::ops::Range;

use memserver_task_abi::{
    SLOT_OWN_TCB, SLOT_SERVER_ENDPOINT, START_REG_IPC_BUFFER, START_REG_OWN_TCB,
    START_REG_SERVER_ENDPOINT, TASK_CNODE_SIZE_BITS,
};
use object::elf::{PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object};

use crate::BootError;
use crate::untyped::ObjectAllocator;

const PAGE_SIZE: usize = sel4::FrameObjectType::GRANULE.bytes();

/// One page of the root task's own image whose frame is unmapped at start-up, so
/// that the root task can map a task's frames there, one at a time, to fill them.
#[repr(C, align(4096))]
struct ScratchPage([u8; PAGE_SIZE]);

static mut SCRATCH_PAGE: ScratchPage = ScratchPage([0; PAGE_SIZE]);

/// The root task's window onto frames it fills for other tasks.
pub struct Scratch {
    addr: usize,
}

impl Scratch {
    /// Unmaps the frame behind [`SCRATCH_PAGE`] so that its address is free.
    /// Call once.
    pub fn take(bootinfo: &sel4::BootInfo) -> Result<Self, BootError> {
        unsafe extern "C" {
            /// First byte of the root task's image (defined by the linker).
            static __executable_start: u8;
        }
        let image_start = (&raw const __executable_start) as usize;
        let addr = (&raw const SCRATCH_PAGE) as usize;
        let index = (addr - image_start) / PAGE_SIZE;
        if index >= bootinfo.user_image_frames().len() {
            return Err(BootError::Layout);
        }
        bootinfo
            .user_image_frames()
            .index(index)
            .cap()
            .frame_unmap()?;
        Ok(Self { addr })
    }

    /// Maps `frame` at the scratch address, runs `fill` on its bytes, unmaps it.
    fn fill(
        &mut self,
        frame: sel4::cap::Granule,
        fill: impl FnOnce(&mut [u8; PAGE_SIZE]),
    ) -> Result<(), BootError> {
        frame.frame_map(
            sel4::init_thread::slot::VSPACE.cap(),
            self.addr,
            sel4::CapRights::read_write(),
            sel4::VmAttributes::default(),
        )?;
        // SAFETY: `frame` is mapped read-write at `self.addr`, a page-aligned
        // page of this task's address space that nothing else uses since
        // `take` unmapped its original frame; the reference ends before the
        // frame is unmapped below.
        fill(unsafe { &mut *(self.addr as *mut [u8; PAGE_SIZE]) });
        frame.frame_unmap()?;
        Ok(())
    }
}

/// A started task: what the root task keeps of it.
pub struct Task {
    /// Its TCB.
    pub tcb: sel4::cap::Tcb,
}

/// Loads `elf` into a new VSpace, gives it a CNode holding `server_endpoint`
/// minted with `badge` and its own TCB, and starts it (see `memserver-task-abi`).
pub fn spawn(
    objects: &mut ObjectAllocator,
    scratch: &mut Scratch,
    elf: &[u8],
    server_endpoint: sel4::cap::Endpoint,
    badge: sel4::Badge,
) -> Result<Task, BootError> {
    let image = ElfFile64::<Endianness>::parse(elf)?;
    let entry = usize::try_from(image.entry()).map_err(|_| BootError::Layout)?;

    let vspace = objects.allocate_fixed::<sel4::cap_type::VSpace>()?;
    sel4::init_thread::slot::ASID_POOL
        .cap()
        .asid_pool_assign(vspace)?;

    let footprint = load_footprint(&image)?;
    let ipc_buffer_addr = footprint.end;
    map_translation_tables(
        objects,
        vspace,
        footprint.start..ipc_buffer_addr + PAGE_SIZE,
    )?;
    map_image(objects, scratch, vspace, &image, elf, footprint)?;

    let ipc_buffer = objects.allocate_fixed::<sel4::cap_type::Granule>()?;
    ipc_buffer.frame_map(
        vspace,
        ipc_buffer_addr,
        sel4::CapRights::read_write(),
        sel4::VmAttributes::default() | sel4::VmAttributes::EXECUTE_NEVER,
    )?;

    let cnode = objects.allocate_sized::<sel4::cap_type::CNode>(TASK_CNODE_SIZE_BITS)?;
    let tcb = objects.allocate_fixed::<sel4::cap_type::Tcb>()?;
    let root_cnode = sel4::init_thread::slot::CNODE.cap();
    // The task's endpoint: it may send and call (the kernel makes a reply
    // capability for the server), never receive on the server's endpoint.
    cnode
        .absolute_cptr_from_bits_with_depth(SLOT_SERVER_ENDPOINT, TASK_CNODE_SIZE_BITS)
        .mint(
            &root_cnode.absolute_cptr(server_endpoint),
            sel4::CapRights::new(true, false, false, true),
            badge,
        )?;
    cnode
        .absolute_cptr_from_bits_with_depth(SLOT_OWN_TCB, TASK_CNODE_SIZE_BITS)
        .mint(&root_cnode.absolute_cptr(tcb), sel4::CapRights::all(), 0)?;

    tcb.tcb_configure(
        sel4::init_thread::slot::NULL.cptr(),
        cnode,
        // The whole word resolves in this one CNode: guard bits fill the rest.
        sel4::CNodeCapData::new(0, sel4::WORD_SIZE - TASK_CNODE_SIZE_BITS),
        vspace,
        ipc_buffer_addr as sel4::Word,
        ipc_buffer,
    )?;

    let mut registers = sel4::UserContext::default();
    *registers.pc_mut() = entry as sel4::Word;
    *registers.gpr_mut(START_REG_IPC_BUFFER) = ipc_buffer_addr as sel4::Word;
    *registers.gpr_mut(START_REG_SERVER_ENDPOINT) = SLOT_SERVER_ENDPOINT;
    *registers.gpr_mut(START_REG_OWN_TCB) = SLOT_OWN_TCB;
    tcb.tcb_write_all_registers(true, &mut registers)?;

    Ok(Task { tcb })
}

/// The page-aligned range of virtual addresses the `PT_LOAD` segments cover.
fn load_footprint(image: &ElfFile64<'_, Endianness>) -> Result<Range<usize>, BootError> {
    let endian = image.endian();
    let mut footprint: Option<Range<usize>> = None;
    for segment in load_segments(image) {
        let start = to_usize(segment.p_vaddr(endian))?;
        let end = start
            .checked_add(to_usize(segment.p_memsz(endian))?)
            .ok_or(BootError::Layout)?;
        footprint = Some(match footprint {
            None => start..end,
            Some(range) => range.start.min(start)..range.end.max(end),
        });
    }
    let footprint = footprint.ok_or(BootError::Layout)?;
    Ok(round_down(footprint.start, PAGE_SIZE)..footprint.end.next_multiple_of(PAGE_SIZE))
}

/// Maps every intermediate translation table (every level below the VSpace
/// root) that addresses in `range` need.
fn map_translation_tables(
    objects: &mut ObjectAllocator,
    vspace: sel4::cap::VSpace,
    range: Range<usize>,
) -> Result<(), BootError> {
    for level in 1..sel4::vspace_levels::NUM_LEVELS {
        let span = 1usize << sel4::vspace_levels::span_bits(level);
        let table_type =
            sel4::TranslationTableObjectType::from_level(level).ok_or(BootError::Layout)?;
        let mut addr = round_down(range.start, span);
        while addr < range.end {
            objects
                .allocate(table_type.blueprint())?
                .cast::<sel4::cap_type::UnspecifiedIntermediateTranslationTable>()
                .generic_intermediate_translation_table_map(
                    table_type,
                    vspace,
                    addr,
                    sel4::VmAttributes::default(),
                )?;
            addr += span;
        }
    }
    Ok(())
}

/// Gives every page of `footprint` a fresh frame, copies the segments' file
/// bytes into it (the rest stays zero: the kernel zeroes retyped memory), and
/// maps it with the union of the rights of the segments that touch it.
fn map_image(
    objects: &mut ObjectAllocator,
    scratch: &mut Scratch,
    vspace: sel4::cap::VSpace,
    image: &ElfFile64<'_, Endianness>,
    elf: &[u8],
    footprint: Range<usize>,
) -> Result<(), BootError> {
    let endian = image.endian();
    for page in footprint.step_by(PAGE_SIZE) {
        let page_range = page..page + PAGE_SIZE;
        let frame = objects.allocate_fixed::<sel4::cap_type::Granule>()?;
        let (mut writable, mut executable, mut has_data) = (false, false, false);

        for segment in load_segments(image) {
            let start = to_usize(segment.p_vaddr(endian))?;
            let mem_end = start + to_usize(segment.p_memsz(endian))?;
            if !overlaps(&page_range, &(start..mem_end)) {
                continue;
            }
            let flags = segment.p_flags(endian);
            writable |= flags & PF_W != 0;
            executable |= flags & PF_X != 0;
            let file_end = start + to_usize(segment.p_filesz(endian))?;
            has_data |= overlaps(&page_range, &(start..file_end));
        }

        if has_data {
            let mut result = Ok(());
            scratch.fill(frame, |bytes| {
                result = copy_file_bytes(image, elf, &page_range, bytes);
            })?;
            result?;
        }

        let rights = sel4::CapRightsBuilder::none()
            .read(true)
            .write(writable)
            .build();
        let mut attributes = sel4::VmAttributes::default();
        if !executable {
            attributes |= sel4::VmAttributes::EXECUTE_NEVER;
        }
        frame.frame_map(vspace, page, rights, attributes)?;
    }
    Ok(())
}

/// Copies into `bytes` (the page at `page_range`) the file bytes of every
/// segment that falls into that page.
fn copy_file_bytes(
    image: &ElfFile64<'_, Endianness>,
    elf: &[u8],
    page_range: &Range<usize>,
    bytes: &mut [u8; PAGE_SIZE],
) -> Result<(), BootError> {
    let endian = image.endian();
    for segment in load_segments(image) {
        let start = to_usize(segment.p_vaddr(endian))?;
        let data = segment.data(endian, elf).map_err(|_| BootError::Layout)?;
        let from = start.max(page_range.start);
        let to = (start + data.len()).min(page_range.end);
        if from >= to {
            continue;
        }
        let source = data
            .get(from - start..to - start)
            .ok_or(BootError::Layout)?;
        let target = bytes
            .get_mut(from - page_range.start..to - page_range.start)
            .ok_or(BootError::Layout)?;
        target.copy_from_slice(source);
    }
    Ok(())
}

fn load_segments<'a>(
    image: &'a ElfFile64<'_, Endianness>,
) -> impl Iterator<Item = &'a object::elf::ProgramHeader64<Endianness>> + 'a {
    let endian = image.endian();
    image
        .elf_program_headers()
        .iter()
        .filter(move |segment| segment.p_type(endian) == PT_LOAD)
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

fn to_usize(value: u64) -> Result<usize, BootError> {
    usize::try_from(value).map_err(|_| BootError::Layout)
}

const fn round_down(value: usize, align: usize) -> usize {
    value - value % align
}
