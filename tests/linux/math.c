/*
 * math.c: libm. Each result printed with %.17g, so one bit of difference
 * shows. (glibc picks some routines by CPUID, FMA or not; the same binary
 * must give the same bits in a virtine.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const double xs[] = {0.0, 1e-300, 0.1, 0.5, 1.0, 2.0, 3.14159265358979, 10.0,
			    123.456, 1e10, -0.75, -7.25};

int main(void)
{
	for (unsigned i = 0; i < sizeof xs / sizeof xs[0]; i++) {
		double x = xs[i];
		printf("x=%.17g\n", x);
		printf("  sin %.17g cos %.17g tan %.17g\n", sin(x), cos(x), tan(x));
		printf("  exp %.17g expm1 %.17g\n", exp(x), expm1(x));
		printf("  log %.17g log2 %.17g log10 %.17g log1p %.17g\n", log(fabs(x)),
		       log2(fabs(x)), log10(fabs(x)), log1p(fabs(x)));
		printf("  pow(x,2.5) %.17g pow(2.5,x) %.17g\n", pow(fabs(x), 2.5), pow(2.5, x));
		printf("  sqrt %.17g cbrt %.17g hypot %.17g\n", sqrt(fabs(x)), cbrt(x), hypot(x, 3.0));
		printf("  atan %.17g atan2 %.17g asinh %.17g tanh %.17g\n", atan(x), atan2(x, -2.0),
		       asinh(x), tanh(x));
		printf("  erf %.17g lgamma %.17g tgamma %.17g\n", erf(x), lgamma(fabs(x) + 0.5),
		       tgamma(fabs(x) / 10 + 0.5));
		printf("  fmod %.17g floor %.17g ceil %.17g round %.17g\n", fmod(x, 0.7), floor(x),
		       ceil(x), round(x));
	}
	float f = 0.3f;
	printf("sinf %.9g expf %.9g logf %.9g powf %.9g sqrtf %.9g\n", sinf(f), expf(f), logf(f),
	       powf(f, 1.7f), sqrtf(f));
	printf("inf %g nan %g -0 %g\n", 1.0 / 0.0 * (xs[4] > 0), sqrt(-1.0) * 0 + NAN, -0.0);
	printf("strtod %.17g %.17g\n", strtod("0.1", NULL), strtod("1e-320", NULL));
	double acc = 0;
	for (int i = 1; i <= 100000; i++)
		acc += sin(i) * exp(-i / 50000.0) / sqrt(i);
	printf("sum %.17g\n", acc);
	return 0;
}
