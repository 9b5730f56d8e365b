/* Wine 8 lacks bcryptprimitives.dll!ProcessPrng, which Rust's std (1.78 and
 * later) imports on Windows, so no Rust .exe starts under it (c0000135).
 * .ci/run builds this stand-in with mingw and puts it beside the test
 * binaries: ProcessPrng is RtlGenRandom (advapi32's SystemFunction036),
 * in chunks of what its ULONG length can hold. Only for CI under Wine;
 * real Windows 10+ has the real one. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
