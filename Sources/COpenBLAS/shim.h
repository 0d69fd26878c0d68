#ifndef WHITTLE_COPENBLAS_SHIM_H
#define WHITTLE_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS interface, plus prototypes for the Fortran LAPACK entry points
// Whittle calls (libopenblas exports them; Debian ships no lapack.h with it).
// All LAPACK matrices are column-major; every argument is passed by pointer.
#include <cblas.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

// Divide-and-conquer SVD: A = U * diag(S) * VT.
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda,
             float *s, float *u, const int *ldu, float *vt, const int *ldvt,
             float *work, const int *lwork, int *iwork, int *info);
// Least squares / minimum norm solution of A X = B via QR or LQ.
void sgels_(const char *trans, const int *m, const int *n, const int *nrhs, float *a,
            const int *lda, float *b, const int *ldb, float *work, const int *lwork, int *info);
// Symmetric eigen-decomposition (used for small dense problems).
void ssyev_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda,
            float *w, float *work, const int *lwork, int *info);
// Symmetric eigen-decomposition, divide and conquer (faster for large matrices).
void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda,
             float *w, float *work, const int *lwork, int *iwork, const int *liwork, int *info);
// Cholesky factorisation of a symmetric positive definite matrix, and the solve with it
// (double precision: used on normal equations, whose condition number is squared).
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info);

#endif
