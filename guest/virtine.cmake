# virtine.cmake: turn C or nasm sources into virtine images.
#
#   include(guest/virtine.cmake)
#
#   wasp_add_virtine(NAME SOURCES a.c [b.c|b.asm ...]
#                    [INCLUDE_DIRECTORIES dir ...] [COMPILE_OPTIONS opt ...]
#                    [DEPENDS file ...])
#       C virtine, 64-bit, linked with the guest runtime (guest/rt) at 0x8000.
#       Produces ${CMAKE_CURRENT_BINARY_DIR}/NAME.bin (the image), NAME.elf
#       (same code with symbols, for gdb/objdump), NAME.map (the linker's)
#       and NAME.sym (`nm -n` of the ELF: what wasp-run --checkpoint-at
#       looks function names up in).
#
#   wasp_add_virtine_asm(NAME SOURCE x.asm [INCLUDE_DIRECTORIES dir ...]
#                        [DEFINES SYM[=VAL] ...])
#       Flat image straight from `nasm -f bin` (the source sets [org] and
#       [bits]); NAME.bin in ${CMAKE_CURRENT_BINARY_DIR}. wasp_abi.inc (the
#       ABI constants) and boot32.inc (real -> 32-bit protected mode) are on
#       the include path.
#
# Both add an ALL target virtine_NAME, set NAME_IMAGE in the caller's scope
# and the target property WASP_IMAGE to the image path (use
# $<TARGET_PROPERTY:virtine_NAME,WASP_IMAGE> from other directories).
#
# Guest code is built with explicit compiler/nasm/ld/objcopy commands, never
# through add_executable: it must not pick up the host's CMAKE_C_FLAGS
# (sanitizers, -fPIE, ...). Override the tools with WASP_GUEST_CC,
# WASP_GUEST_LD, WASP_GUEST_OBJCOPY, WASP_GUEST_AR, WASP_NASM.
# WASP_WERROR=ON adds -Werror to guest C code too.

include_guard(GLOBAL)

if(CMAKE_VERSION VERSION_LESS 3.17)
	message(FATAL_ERROR "wasp: guest/virtine.cmake needs CMake >= 3.17")
endif()
# Depfile paths are absolute or relative to the current binary dir (what the
# compilers write below). Functions keep the policies of their definition.
if(POLICY CMP0116)
	cmake_policy(SET CMP0116 NEW)
endif()

# ---- Tools ------------------------------------------------------------------

if(CMAKE_C_COMPILER)
	set(_wasp_default_cc "${CMAKE_C_COMPILER}")
else()
	find_program(_wasp_default_cc NAMES gcc cc clang)
endif()
set(WASP_GUEST_CC "${_wasp_default_cc}" CACHE FILEPATH
	"C compiler for guest code (must target x86-64; gcc or clang)")
find_program(WASP_NASM nasm DOC "nasm, for guest boot code and asm virtines")
find_program(WASP_GUEST_LD NAMES ld.bfd ld DOC "GNU ld for guest images")
find_program(WASP_GUEST_OBJCOPY NAMES objcopy llvm-objcopy DOC "objcopy for guest images")
find_program(WASP_GUEST_AR NAMES ar llvm-ar DOC "ar for the guest runtime archive")
find_program(WASP_GUEST_NM NAMES nm llvm-nm DOC "nm for the symbol maps of guest images")
foreach(_tool WASP_GUEST_CC WASP_NASM WASP_GUEST_LD WASP_GUEST_OBJCOPY WASP_GUEST_AR WASP_GUEST_NM)
	if(NOT ${_tool})
		message(FATAL_ERROR "wasp: ${_tool} not found; guest images need nasm, "
			"a C compiler for x86-64 and binutils (apt install nasm binutils gcc)")
	endif()
endforeach()

# libgcc supplies what the compiler may call on its own (128-bit division).
execute_process(COMMAND "${WASP_GUEST_CC}" -print-libgcc-file-name
	OUTPUT_VARIABLE _wasp_libgcc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT IS_ABSOLUTE "${_wasp_libgcc}" OR NOT EXISTS "${_wasp_libgcc}")
	set(_wasp_libgcc "")
endif()
set(WASP_GUEST_LIBGCC "${_wasp_libgcc}" CACHE INTERNAL "")

# -nostdinc keeps the host's libc headers out of guest code (an #include
# <stdio.h> fails at once instead of at link time); the compiler's own
# freestanding headers (stdint.h, stddef.h, stdarg.h) are added back.
execute_process(COMMAND "${WASP_GUEST_CC}" -print-file-name=include
	OUTPUT_VARIABLE _wasp_ccinc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(IS_ABSOLUTE "${_wasp_ccinc}" AND EXISTS "${_wasp_ccinc}/stddef.h")
	set(WASP_GUEST_STDINC -nostdinc -isystem "${_wasp_ccinc}" CACHE INTERNAL "")
else()
	set(WASP_GUEST_STDINC "" CACHE INTERNAL "")
endif()

# binutils >= 2.39 warns about the image's single RWX segment (on purpose).
execute_process(COMMAND "${WASP_GUEST_LD}" --help OUTPUT_VARIABLE _wasp_ldhelp ERROR_QUIET)
if(_wasp_ldhelp MATCHES "no-warn-rwx-segments")
	set(WASP_GUEST_LDFLAGS_EXTRA --no-warn-rwx-segments CACHE INTERNAL "")
else()
	set(WASP_GUEST_LDFLAGS_EXTRA "" CACHE INTERNAL "")
endif()

set(WASP_GUEST_CFLAGS
	-std=c11 -O2 -g
	-ffreestanding -fno-pic -fno-pie -fno-stack-protector
	-mno-red-zone -mcmodel=small
	-fno-asynchronous-unwind-tables -fno-unwind-tables -fcf-protection=none
	-ffunction-sections -fdata-sections
	-Wall -Wextra
	CACHE INTERNAL "flags for guest C code")
if(WASP_WERROR)
	set(WASP_GUEST_CFLAGS ${WASP_GUEST_CFLAGS} -Werror CACHE INTERNAL "")
endif()

# The runtime's own memmove loop must not be turned into a call to memmove
# (gcc's loop distribution; clang does not do this under -ffreestanding).
execute_process(COMMAND "${WASP_GUEST_CC}" -fno-tree-loop-distribute-patterns -x c -c /dev/null
	-o /dev/null RESULT_VARIABLE _wasp_rc OUTPUT_QUIET ERROR_QUIET)
if(_wasp_rc EQUAL 0)
	set(WASP_GUEST_RT_CFLAGS -fno-tree-loop-distribute-patterns CACHE INTERNAL "")
else()
	set(WASP_GUEST_RT_CFLAGS "" CACHE INTERNAL "")
endif()

set(WASP_GUEST_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}" CACHE INTERNAL "guest/ in the source tree")
set(WASP_GUEST_RT_DIR "${CMAKE_BINARY_DIR}/guest/rt" CACHE INTERNAL "guest runtime build dir")

# ---- wasp_abi.inc: the ABI header's constants for nasm --------------------
#
# Generated from wasp_abi.h at configure time so the two can never disagree:
# every `#define WASP_X value` and every `WASP_X = number,` enum entry becomes
# `%define WASP_X value` (C integer suffixes dropped).

function(_wasp_generate_abi_inc header out)
	file(STRINGS "${header}" lines)
	set(text "; Generated from wasp_abi.h by guest/virtine.cmake; do not edit.\n")
	foreach(line IN LISTS lines)
		string(REGEX REPLACE "/\\*.*\\*/" "" line "${line}")
		if(line MATCHES "^#define[ \t]+(WASP_[A-Z0-9_]+)[ \t]+([^ \t].*)$")
			set(sym "${CMAKE_MATCH_1}")
			string(STRIP "${CMAKE_MATCH_2}" val)
		elseif(line MATCHES "^[ \t]*(WASP_[A-Z0-9_]+)[ \t]*=[ \t]*(0x[0-9a-fA-F]+|[0-9]+)[ \t]*,")
			set(sym "${CMAKE_MATCH_1}")
			set(val "${CMAKE_MATCH_2}")
		else()
			continue()
		endif()
		if(NOT val MATCHES "^\"")
			string(REGEX REPLACE "([0-9a-fA-F])[uUlL]+" "\\1" val "${val}")
		endif()
		string(APPEND text "%define ${sym} ${val}\n")
	endforeach()
	set(old "")
	if(EXISTS "${out}")
		file(READ "${out}" old)
	endif()
	if(NOT old STREQUAL text)
		file(WRITE "${out}" "${text}")
	endif()
endfunction()

set(WASP_GUEST_GEN_DIR "${CMAKE_BINARY_DIR}/guest/include" CACHE INTERNAL "generated guest headers")
_wasp_generate_abi_inc("${WASP_GUEST_SOURCE_DIR}/wasp_abi.h" "${WASP_GUEST_GEN_DIR}/wasp_abi.inc")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${WASP_GUEST_SOURCE_DIR}/wasp_abi.h")

# ---- Helpers ------------------------------------------------------------------

# DEPFILE for custom commands works with Ninja always, with Makefiles from 3.20.
if(CMAKE_GENERATOR MATCHES "Ninja" OR CMAKE_VERSION VERSION_GREATER_EQUAL 3.20)
	set(_WASP_HAVE_DEPFILE TRUE CACHE INTERNAL "")
else()
	set(_WASP_HAVE_DEPFILE FALSE CACHE INTERNAL "")
endif()

# Compiles one guest C file: _wasp_guest_cc(src obj [extra flags...]).
function(_wasp_guest_cc src obj)
	set(dep_args)
	if(_WASP_HAVE_DEPFILE)
		set(dep_args DEPFILE "${obj}.d")
	else()
		set(dep_args IMPLICIT_DEPENDS C "${src}")
	endif()
	add_custom_command(OUTPUT "${obj}"
		COMMAND "${WASP_GUEST_CC}" ${WASP_GUEST_CFLAGS} ${WASP_GUEST_STDINC} ${ARGN}
			"-I${WASP_GUEST_SOURCE_DIR}" -MD -MF "${obj}.d" -MT "${obj}"
			-c "${src}" -o "${obj}"
		DEPENDS "${src}" "${WASP_GUEST_SOURCE_DIR}/wasp_guest.h"
			"${WASP_GUEST_SOURCE_DIR}/wasp_abi.h"
		${dep_args}
		COMMENT "Guest CC ${src}"
		VERBATIM)
endfunction()

# Assembles one nasm file: _wasp_guest_nasm(src out format [extra flags...]).
function(_wasp_guest_nasm src out format)
	get_filename_component(srcdir "${src}" DIRECTORY)
	set(dep_args)
	if(_WASP_HAVE_DEPFILE)
		set(dep_args DEPFILE "${out}.d")
	endif()
	# nasm before 2.14 glued -I paths to file names: keep the trailing slash.
	set(nasm_args -f ${format} ${ARGN}
		"-I${srcdir}/" "-I${WASP_GUEST_SOURCE_DIR}/rt/" "-I${WASP_GUEST_GEN_DIR}/")
	# Dependencies in a separate pass: nasm 2.16's -MD leaves out %includes.
	add_custom_command(OUTPUT "${out}"
		COMMAND "${WASP_NASM}" ${nasm_args} -M -MF "${out}.d" -MT "${out}" "${src}"
		COMMAND "${WASP_NASM}" ${nasm_args} -o "${out}" "${src}"
		DEPENDS "${src}" "${WASP_GUEST_GEN_DIR}/wasp_abi.inc"
		${dep_args}
		COMMENT "Guest NASM ${src}"
		VERBATIM)
endfunction()

function(_wasp_register_image name image)
	set_target_properties(virtine_${name} PROPERTIES WASP_IMAGE "${image}")
	set_property(GLOBAL APPEND PROPERTY WASP_VIRTINE_IMAGES "${image}")
endfunction()

# ---- The guest runtime: boot.o + libwasp_guest_rt.a, built once -------------

if(NOT TARGET wasp_guest_rt)
	set(_rt_src "${WASP_GUEST_SOURCE_DIR}/rt")
	set(_rt_objs)
	foreach(_name start string format args malloc)
		_wasp_guest_cc("${_rt_src}/${_name}.c" "${WASP_GUEST_RT_DIR}/${_name}.o"
			${WASP_GUEST_RT_CFLAGS})
		list(APPEND _rt_objs "${WASP_GUEST_RT_DIR}/${_name}.o")
	endforeach()
	_wasp_guest_nasm("${_rt_src}/boot.asm" "${WASP_GUEST_RT_DIR}/boot.o" elf64)
	set(_rt_lib "${WASP_GUEST_RT_DIR}/libwasp_guest_rt.a")
	add_custom_command(OUTPUT "${_rt_lib}"
		COMMAND "${CMAKE_COMMAND}" -E rm -f "${_rt_lib}"
		COMMAND "${WASP_GUEST_AR}" rcs "${_rt_lib}" ${_rt_objs}
		DEPENDS ${_rt_objs}
		COMMENT "Guest runtime archive"
		VERBATIM)
	add_custom_target(wasp_guest_rt ALL DEPENDS "${_rt_lib}" "${WASP_GUEST_RT_DIR}/boot.o")
	file(MAKE_DIRECTORY "${WASP_GUEST_RT_DIR}")
endif()

# ---- Public functions ---------------------------------------------------------

function(wasp_add_virtine name)
	cmake_parse_arguments(PARSE_ARGV 1 arg "" ""
		"SOURCES;INCLUDE_DIRECTORIES;COMPILE_OPTIONS;DEPENDS")
	if(NOT arg_SOURCES)
		message(FATAL_ERROR "wasp_add_virtine(${name}): no SOURCES")
	endif()
	if(arg_UNPARSED_ARGUMENTS)
		message(FATAL_ERROR "wasp_add_virtine(${name}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
	endif()

	set(out "${CMAKE_CURRENT_BINARY_DIR}")
	set(objdir "${out}/virtine_${name}.dir")
	file(MAKE_DIRECTORY "${objdir}")
	set(incs)
	foreach(dir IN LISTS arg_INCLUDE_DIRECTORIES)
		get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
		list(APPEND incs "-I${dir}")
	endforeach()

	set(objs)
	foreach(src IN LISTS arg_SOURCES)
		get_filename_component(abs "${src}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
		file(RELATIVE_PATH rel "${CMAKE_CURRENT_SOURCE_DIR}" "${abs}")
		string(MAKE_C_IDENTIFIER "${rel}" stem) # a/x.c and b/x.c must not collide
		set(obj "${objdir}/${stem}.o")
		if(abs MATCHES "\\.c$")
			_wasp_guest_cc("${abs}" "${obj}" ${incs} ${arg_COMPILE_OPTIONS})
		elseif(abs MATCHES "\\.(asm|nasm)$")
			_wasp_guest_nasm("${abs}" "${obj}" elf64)
		else()
			message(FATAL_ERROR "wasp_add_virtine(${name}): ${src}: not .c or .asm")
		endif()
		list(APPEND objs "${obj}")
	endforeach()

	set(elf "${out}/${name}.elf")
	set(bin "${out}/${name}.bin")
	set(ld_script "${WASP_GUEST_SOURCE_DIR}/virtine.ld")
	set(sym "${out}/${name}.sym")
	add_custom_command(OUTPUT "${bin}" "${elf}" "${sym}"
		COMMAND "${WASP_GUEST_LD}" -m elf_x86_64 -static -nostdlib --build-id=none
			--gc-sections --orphan-handling=warn ${WASP_GUEST_LDFLAGS_EXTRA}
			-T "${ld_script}" "-Map=${out}/${name}.map" -o "${elf}"
			"${WASP_GUEST_RT_DIR}/boot.o" ${objs}
			"${WASP_GUEST_RT_DIR}/libwasp_guest_rt.a" ${WASP_GUEST_LIBGCC}
		COMMAND "${WASP_GUEST_OBJCOPY}" -O binary "${elf}" "${bin}"
		COMMAND sh -c "\"$1\" -n \"$2\" > \"$3\"" nm "${WASP_GUEST_NM}" "${elf}" "${sym}"
		DEPENDS ${objs} "${ld_script}" "${WASP_GUEST_RT_DIR}/boot.o"
			"${WASP_GUEST_RT_DIR}/libwasp_guest_rt.a" ${arg_DEPENDS}
		COMMENT "Virtine ${name}.bin"
		VERBATIM)
	add_custom_target(virtine_${name} ALL DEPENDS "${bin}")
	add_dependencies(virtine_${name} wasp_guest_rt)
	set_target_properties(virtine_${name} PROPERTIES WASP_ELF "${elf}")
	_wasp_register_image(${name} "${bin}")
	set(${name}_IMAGE "${bin}" PARENT_SCOPE)
endfunction()

function(wasp_add_virtine_asm name)
	cmake_parse_arguments(PARSE_ARGV 1 arg "" "SOURCE" "INCLUDE_DIRECTORIES;DEFINES")
	if(NOT arg_SOURCE)
		message(FATAL_ERROR "wasp_add_virtine_asm(${name}): no SOURCE")
	endif()
	if(arg_UNPARSED_ARGUMENTS)
		message(FATAL_ERROR "wasp_add_virtine_asm(${name}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
	endif()
	get_filename_component(abs "${arg_SOURCE}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
	set(flags)
	foreach(dir IN LISTS arg_INCLUDE_DIRECTORIES)
		get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
		list(APPEND flags "-I${dir}/")
	endforeach()
	foreach(def IN LISTS arg_DEFINES)
		list(APPEND flags "-D${def}")
	endforeach()

	set(bin "${CMAKE_CURRENT_BINARY_DIR}/${name}.bin")
	_wasp_guest_nasm("${abs}" "${bin}" bin ${flags})
	add_custom_target(virtine_${name} ALL DEPENDS "${bin}")
	_wasp_register_image(${name} "${bin}")
	set(${name}_IMAGE "${bin}" PARENT_SCOPE)
endfunction()
