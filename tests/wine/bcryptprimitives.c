/* bcryptprimitives.dll for Wine 8 (Debian bookworm), which lacks it: Rust's standard library
 * imports ProcessPrng from it for its random numbers (HashMap keys, among others), so no Rust
 * program starts without it. This one exports ProcessPrng, filled by RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has. Built by tests/wine/run with MinGW's gcc into
 * the private Wine prefix's system32; Windows itself has the real DLL and never sees this one. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
