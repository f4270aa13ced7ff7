//! Building a task from its own ELF image, in a VSpace and CSpace of its own, and
//! mapping memory (shared or boot info) into it.

use core::ops::Range;

use alloc::vec::Vec;

use memserver_sel4_abi::Region;
use memserver_sel4_abi::layout::ROOT_MAPPINGS_END;
use memserver_sel4_abi::start::{
    BOOT_INFO_PAGES, REG_BOOT_INFO, REG_BOOT_INFO_LEN, REG_ENDPOINT, REG_IPC_BUFFER, REG_OWN_TCB, SLOT_ENDPOINT,
    SLOT_OWN_TCB,
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
        bootinfo.user_image_frames().index(index).cap().frame_unmap()?;
        Ok(Self { addr })
    }

    /// Maps `frame` at the scratch address, runs `fill` on its bytes, unmaps it.
    fn fill(&mut self, frame: sel4::cap::Granule, fill: impl FnOnce(&mut [u8; PAGE_SIZE])) -> Result<(), BootError> {
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

/// A frame capability of either size the root task maps.
#[derive(Clone, Copy)]
pub enum Frame {
    /// 4 KiB.
    Small(sel4::cap::SmallPage),
    /// 2 MiB.
    Large(sel4::cap::LargePage),
}

impl Frame {
    /// Bytes it covers.
    pub fn bytes(self) -> usize {
        match self {
            Frame::Small(_) => PAGE_SIZE,
            Frame::Large(_) => sel4::FrameObjectType::LargePage.bytes(),
        }
    }

    fn map(self, vspace: sel4::cap::VSpace, addr: usize, rights: sel4::CapRights) -> Result<(), BootError> {
        let attributes = sel4::VmAttributes::default() | sel4::VmAttributes::EXECUTE_NEVER;
        match self {
            Frame::Small(cap) => cap.frame_map(vspace, addr, rights, attributes)?,
            Frame::Large(cap) => cap.frame_map(vspace, addr, rights, attributes)?,
        }
        Ok(())
    }

    /// A second capability to the same frame (to map it into a second VSpace).
    pub fn copy(self, objects: &mut ObjectAllocator) -> Result<Frame, BootError> {
        Ok(match self {
            Frame::Small(cap) => Frame::Small(objects.copy(cap)?),
            Frame::Large(cap) => Frame::Large(objects.copy(cap)?),
        })
    }
}

/// Fresh (zeroed) memory of `bytes`, in 2 MiB frames when `bytes` is a
/// multiple of 2 MiB, else in 4 KiB frames.
pub fn allocate_memory(objects: &mut ObjectAllocator, bytes: usize) -> Result<Vec<Frame>, BootError> {
    let large = sel4::FrameObjectType::LargePage.bytes();
    let mut frames = Vec::new();
    if bytes % large == 0 {
        for _ in 0..bytes / large {
            frames.push(Frame::Large(objects.allocate_fixed::<sel4::cap_type::LargePage>()?));
        }
    } else {
        for _ in 0..bytes.div_ceil(PAGE_SIZE) {
            frames.push(Frame::Small(objects.allocate_fixed::<sel4::cap_type::SmallPage>()?));
        }
    }
    Ok(frames)
}

/// A task being built: its own VSpace (with the translation tables made so
/// far), CNode and TCB, loaded from its ELF image but not yet started.
pub struct Process {
    /// Its VSpace.
    pub vspace: sel4::cap::VSpace,
    /// Its CNode (the root of its CSpace, one level).
    pub cnode: sel4::cap::CNode,
    cnode_size_bits: usize,
    /// Its TCB.
    pub tcb: sel4::cap::Tcb,
    entry: usize,
    ipc_buffer_addr: usize,
    /// Translation tables mapped so far: (level, first address it covers).
    tables: Vec<(usize, usize)>,
    /// Next free address for [`Process::map_memory`].
    next_region: usize,
}

/// Where the regions mapped with [`Process::map_memory`] start (far above any
/// task image), and the gap left unmapped after each.
const REGION_BASE: usize = 0x1_0000_0000;
const REGION_GUARD: usize = 2 * 1024 * 1024;

impl Process {
    /// Loads `elf` into a new VSpace, with an IPC buffer, a CNode of
    /// `2^cnode_size_bits` slots holding its own TCB capability, and a configured
    /// (not yet started) TCB whose faults go to the endpoint in `fault_slot` of that
    /// CNode (0: none).
    pub fn load(
        objects: &mut ObjectAllocator,
        scratch: &mut Scratch,
        elf: &[u8],
        cnode_size_bits: u8,
        fault_slot: u64,
    ) -> Result<Self, BootError> {
        let cnode_size_bits = usize::from(cnode_size_bits);
        let image = ElfFile64::<Endianness>::parse(elf)?;
        let entry = usize::try_from(image.entry()).map_err(|_| BootError::Layout)?;

        let vspace = objects.allocate_fixed::<sel4::cap_type::VSpace>()?;
        sel4::init_thread::slot::ASID_POOL.cap().asid_pool_assign(vspace)?;
        let cnode = objects.allocate_sized::<sel4::cap_type::CNode>(cnode_size_bits)?;
        let tcb = objects.allocate_fixed::<sel4::cap_type::Tcb>()?;
        let footprint = load_footprint(&image)?;
        let ipc_buffer_addr = footprint.end;
        let mut process = Process {
            vspace,
            cnode,
            cnode_size_bits,
            tcb,
            entry,
            ipc_buffer_addr,
            tables: Vec::new(),
            next_region: REGION_BASE,
        };

        process.ensure_tables(objects, footprint.start..ipc_buffer_addr + PAGE_SIZE, PAGE_SIZE)?;
        map_image(objects, scratch, vspace, &image, elf, footprint)?;
        let ipc_buffer = objects.allocate_fixed::<sel4::cap_type::Granule>()?;
        ipc_buffer.frame_map(
            vspace,
            ipc_buffer_addr,
            sel4::CapRights::read_write(),
            sel4::VmAttributes::default() | sel4::VmAttributes::EXECUTE_NEVER,
        )?;
        process.copy_cap(SLOT_OWN_TCB, tcb, sel4::CapRights::all(), 0)?;
        tcb.tcb_configure(
            sel4::CPtr::from_bits(fault_slot),
            cnode,
            // The whole word resolves in this one CNode: guard bits fill the rest.
            Self::guard(cnode_size_bits),
            vspace,
            ipc_buffer_addr as sel4::Word,
            ipc_buffer,
        )?;
        Ok(process)
    }

    /// The CNode capability data that makes a full word resolve in one CNode of `bits` bits.
    fn guard(bits: usize) -> sel4::CNodeCapData {
        sel4::CNodeCapData::new(0, sel4::WORD_SIZE - bits)
    }

    /// A capability to the task's own CNode, into `slot` of it, with the guard its TCB
    /// uses (so the task can name its slots with full-word paths through it).
    pub fn give_own_cnode(&mut self, slot: u64) -> Result<(), BootError> {
        let guard = Self::guard(self.cnode_size_bits).into_word();
        self.copy_cap(slot, self.cnode, sel4::CapRights::all(), guard)
    }

    /// The slot of the task's CNode as a path from the root task's CNode capability to it.
    pub fn slot_path(&self, slot: u64) -> sel4::AbsoluteCPtr {
        self.cnode.absolute_cptr_from_bits_with_depth(slot, self.cnode_size_bits)
    }

    /// Puts a capability (a root-CNode one, minted with `rights` and `badge`)
    /// into `slot` of the task's CNode.
    pub fn copy_cap<T: sel4::CapType>(
        &mut self,
        slot: u64,
        cap: sel4::Cap<T>,
        rights: sel4::CapRights,
        badge: sel4::Word,
    ) -> Result<(), BootError> {
        let root_cnode = sel4::init_thread::slot::CNODE.cap();
        self.slot_path(slot).mint(&root_cnode.absolute_cptr(cap), rights, badge)?;
        Ok(())
    }

    /// Maps every translation table below the VSpace root that addresses in
    /// `range` need for pages of `page_bytes`, skipping tables already there.
    fn ensure_tables(
        &mut self,
        objects: &mut ObjectAllocator,
        range: Range<usize>,
        page_bytes: usize,
    ) -> Result<(), BootError> {
        for level in 1..sel4::vspace_levels::NUM_LEVELS {
            let span = 1usize << sel4::vspace_levels::span_bits(level);
            // A table at this level whose entries would be smaller than the
            // pages is not needed.
            if (1usize << sel4::vspace_levels::step_bits(level)) < page_bytes {
                continue;
            }
            let table_type = sel4::TranslationTableObjectType::from_level(level).ok_or(BootError::Layout)?;
            let mut addr = round_down(range.start, span);
            while addr < range.end {
                if !self.tables.contains(&(level, addr)) {
                    objects
                        .allocate(table_type.blueprint())?
                        .cast::<sel4::cap_type::UnspecifiedIntermediateTranslationTable>()
                        .generic_intermediate_translation_table_map(
                            table_type,
                            self.vspace,
                            addr,
                            sel4::VmAttributes::default(),
                        )?;
                    self.tables.push((level, addr));
                }
                addr += span;
            }
        }
        Ok(())
    }

    /// Maps `frames` one after the other at the next free region address
    /// (aligned to the frames' size), with `rights`; returns where.
    pub fn map_memory(
        &mut self,
        objects: &mut ObjectAllocator,
        frames: &[Frame],
        rights: sel4::CapRights,
    ) -> Result<Region, BootError> {
        let page_bytes = frames.first().map_or(PAGE_SIZE, |f| f.bytes());
        let bytes: usize = frames.iter().map(|f| f.bytes()).sum();
        let addr = self.next_region.next_multiple_of(page_bytes);
        self.ensure_tables(objects, addr..addr + bytes, page_bytes)?;
        let mut at = addr;
        for frame in frames {
            frame.map(self.vspace, at, rights.clone())?;
            at += frame.bytes();
        }
        self.next_region = at + REGION_GUARD;
        if self.next_region as u64 > ROOT_MAPPINGS_END {
            return Err(BootError::Layout);
        }
        Ok(Region { addr: addr as u64, len: bytes as u64 })
    }

    /// Writes `bytes` into fresh boot-info pages mapped read-only into the task.
    pub fn boot_info(
        &mut self,
        objects: &mut ObjectAllocator,
        scratch: &mut Scratch,
        bytes: &[u8],
    ) -> Result<Region, BootError> {
        if bytes.len() > BOOT_INFO_PAGES * PAGE_SIZE {
            return Err(BootError::Layout);
        }
        let frames = allocate_memory(objects, BOOT_INFO_PAGES * PAGE_SIZE)?;
        for (frame, chunk) in frames.iter().zip(bytes.chunks(PAGE_SIZE)) {
            let Frame::Small(cap) = *frame else { return Err(BootError::Layout) };
            scratch.fill(cap, |page| page[..chunk.len()].copy_from_slice(chunk))?;
        }
        let region = self.map_memory(objects, &frames, sel4::CapRights::read_only())?;
        Ok(Region { addr: region.addr, len: bytes.len() as u64 })
    }

    /// Starts the task with the start registers of `memserver-sel4-abi`.
    pub fn start(&self, boot_info: Region) -> Result<(), BootError> {
        let mut registers = sel4::UserContext::default();
        *registers.pc_mut() = self.entry as sel4::Word;
        *registers.gpr_mut(REG_IPC_BUFFER) = self.ipc_buffer_addr as sel4::Word;
        *registers.gpr_mut(REG_OWN_TCB) = SLOT_OWN_TCB;
        *registers.gpr_mut(REG_ENDPOINT) = SLOT_ENDPOINT;
        *registers.gpr_mut(REG_BOOT_INFO) = boot_info.addr;
        *registers.gpr_mut(REG_BOOT_INFO_LEN) = boot_info.len;
        self.tcb.tcb_write_all_registers(true, &mut registers)?;
        Ok(())
    }
}

/// The page-aligned range of virtual addresses the `PT_LOAD` segments cover.
fn load_footprint(image: &ElfFile64<'_, Endianness>) -> Result<Range<usize>, BootError> {
    let endian = image.endian();
    let mut footprint: Option<Range<usize>> = None;
    for segment in load_segments(image) {
        let start = to_usize(segment.p_vaddr(endian))?;
        let end = start.checked_add(to_usize(segment.p_memsz(endian))?).ok_or(BootError::Layout)?;
        footprint = Some(match footprint {
            None => start..end,
            Some(range) => range.start.min(start)..range.end.max(end),
        });
    }
    let footprint = footprint.ok_or(BootError::Layout)?;
    Ok(round_down(footprint.start, PAGE_SIZE)..footprint.end.next_multiple_of(PAGE_SIZE))
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

        let rights = sel4::CapRightsBuilder::none().read(true).write(writable).build();
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
        let source = data.get(from - start..to - start).ok_or(BootError::Layout)?;
        let target = bytes.get_mut(from - page_range.start..to - page_range.start).ok_or(BootError::Layout)?;
        target.copy_from_slice(source);
    }
    Ok(())
}

fn load_segments<'a>(
    image: &'a ElfFile64<'_, Endianness>,
) -> impl Iterator<Item = &'a object::elf::ProgramHeader64<Endianness>> + 'a {
    let endian = image.endian();
    image.elf_program_headers().iter().filter(move |segment| segment.p_type(endian) == PT_LOAD)
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
