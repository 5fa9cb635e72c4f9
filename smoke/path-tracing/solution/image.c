/* Oracle for path-tracing: a compact ray tracer of the described scene.
   Red sphere, checkerboard plane y=-1, sun (1,1,-1) with shadows, ambient 0.2, sky gradient. */
#include <math.h>
#include <stdio.h>
typedef struct { float x, y, z; } V;
V mk(float a, float b, float c) { V r = {a, b, c}; return r; }
V ad(V a, V b) { return mk(a.x + b.x, a.y + b.y, a.z + b.z); }
V sc(V a, float s) { return mk(a.x * s, a.y * s, a.z * s); }
float dt(V a, V b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
V nz(V a) { return sc(a, 1 / sqrtf(dt(a, a))); }
V C = {0, 0, -4};
float sph(V o, V d) {
  V q = ad(o, sc(C, -1));
  float b = dt(q, d), h = b * b - dt(q, q) + 1;
  if (h < 0) return -1;
  h = -b - sqrtf(h);
  return h > 1e-4 ? h : -1;
}
int main() {
  FILE *f = fopen("reconstructed.ppm", "w");
  int W = 2400, H = 1800, x, y;
  V L = nz(mk(1, 1, -1));
  float s = tanf(M_PI / 6);
  fprintf(f, "P3\n%d %d\n255\n", W, H);
  for (y = 0; y < H; y++)
    for (x = 0; x < W; x++) {
      V d = nz(mk((2 * (x + .5f) / W - 1) * W / H * s, (1 - 2 * (y + .5f) / H) * s, -1)), o = mk(0, 0, 0), n, a, c;
      float t = sph(o, d), p = d.y < 0 ? -1 / d.y : -1, k;
      if (t > 0 && (p < 0 || t < p)) {
        o = sc(d, t); n = nz(ad(o, sc(C, -1))); a = mk(.9, .1, .1);
      } else if (p > 0) {
        o = sc(d, p); n = mk(0, 1, 0);
        a = ((int)floorf(o.x) + (int)floorf(o.z)) & 1 ? mk(.9, .9, .9) : mk(.15, .15, .15);
      } else {
        k = .5 * (d.y + 1);
        a = mk(1 - .5 * k, 1 - .3 * k, 1); n = L; o = mk(0, 1e9, 0);
      }
      k = dt(n, L);
      if (k < 0 || sph(ad(o, sc(n, 1e-3)), L) > 0) k = 0;
      c = o.y > 1e8 ? a : sc(a, .2 + .8 * k);
      fprintf(f, "%d %d %d ", (int)(fminf(c.x, 1) * 255 + .5), (int)(fminf(c.y, 1) * 255 + .5), (int)(fminf(c.z, 1) * 255 + .5));
    }
  return fclose(f);
}
