// The one translation unit that compiles Asio's and Beast's implementation
// (BOOST_ASIO_SEPARATE_COMPILATION, BOOST_BEAST_SEPARATE_COMPILATION): every other file includes
// only their declarations, which keeps builds of this 2-core machine tolerable.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
