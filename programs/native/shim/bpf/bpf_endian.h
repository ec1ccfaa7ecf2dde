/* SPDX-License-Identifier: GPL-2.0 */
/* libbpf's <bpf/bpf_endian.h> for the native module: the kernel's own byte-order macros. */
#ifndef XCL_NATIVE_BPF_ENDIAN_H
#define XCL_NATIVE_BPF_ENDIAN_H

#include <asm/byteorder.h>

#define bpf_ntohs(x) be16_to_cpu(x)
#define bpf_htons(x) cpu_to_be16(x)

#endif
